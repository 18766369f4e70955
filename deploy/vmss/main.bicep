// msi-pair on VM Scale Sets: the caller and the api each on a Linux scale set, the api behind an
// internal load balancer, images pulled from ACR with managed identities (AcrPull), CPU autoscale,
// egress limited by NSGs, and an identity for a Prometheus server that discovers the instances
// with azure_sd_configs (deploy/prometheus/azure-vmss.yml).
//
// Deploy with: az deployment group create -g RG -f deploy/vmss/main.bicep -p ... (see deploy/README.md)
// The Entra objects (api app registration, role assignment) are made by deploy/entra/register-api.sh.

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Prefix of every resource name.')
@maxLength(16)
param namePrefix string = 'msi-pair'

@description('Name of an existing Azure Container Registry in this resource group that holds msi-pair-api and msi-pair-caller (admin user disabled).')
param acrName string

@description('Tag of both images in the registry. Pin a real version rather than a moving tag.')
param imageTag string = 'v1'

@description('Application (client) ID of the api app registration, printed by deploy/entra/register-api.sh.')
param apiClientId string

@description('Application ID URI of the api app registration.')
param apiIdentifierUri string = 'api://msi-pair-api'

@description('Entra tenant whose tokens the api accepts.')
param tenantId string = tenant().tenantId

@description('Identity the caller gets its api token with. SystemAssigned lives and dies with the scale set; UserAssigned survives a redeploy (its principal keeps the app role assignment).')
@allowed(['SystemAssigned', 'UserAssigned'])
param callerIdentityType string = 'SystemAssigned'

@description('Admin user of the instances (SSH key only; there is no password).')
param adminUsername string = 'azureuser'

@description('SSH public key for the admin user, e.g. the content of ~/.ssh/id_ed25519.pub. A public key is not a secret.')
param sshPublicKey string

@description('VM size of both scale sets.')
param vmSize string = 'Standard_B2s'

@description('Availability zones of both scale sets; leave empty in regions without zones.')
param zones array = []

@description('Minimum instances per scale set (autoscale floor). 2 keeps a tier up during rolling upgrades and repairs.')
@minValue(1)
param minInstances int = 2

@description('Maximum instances per scale set (autoscale ceiling).')
@minValue(1)
param maxInstances int = 4

@description('log level of both services (pino levels).')
@allowed(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
param logLevel string = 'info'

@description('VNet address space.')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Caller subnet.')
param callerSubnetPrefix string = '10.40.1.0/24'

@description('Api subnet; the internal load balancer takes its 10th usable address.')
param apiSubnetPrefix string = '10.40.2.0/24'

@description('Subnet for the Prometheus server.')
param monitoringSubnetPrefix string = '10.40.3.0/24'

@description('Allow outbound HTTP (80) so cloud-init can install docker from the distribution mirrors. Set false only with an image that already has docker.')
param allowPackageMirrorEgress bool = true

var callerPort = 3000
var apiPort = 3001
var apiLbIp = cidrHost(apiSubnetPrefix, 9)
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
// The services expect the authority host without a trailing slash; take it from this cloud.
// (loginEndpoint is e.g. 'https://login.microsoftonline.com/'; element 2 of the split is the host).
var authorityHost = 'https://${split(environment().authentication.loginEndpoint, '/')[2]}'

resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: acrName
}

module network 'modules/network.bicep' = {
  name: 'network'
  params: {
    location: location
    namePrefix: namePrefix
    vnetAddressPrefix: vnetAddressPrefix
    callerSubnetPrefix: callerSubnetPrefix
    apiSubnetPrefix: apiSubnetPrefix
    monitoringSubnetPrefix: monitoringSubnetPrefix
    callerPort: callerPort
    apiPort: apiPort
    allowPackageMirrorEgress: allowPackageMirrorEgress
  }
}

// Only created when the caller should use a user-assigned identity.
resource callerUami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (callerIdentityType == 'UserAssigned') {
  name: '${namePrefix}-caller-id'
  location: location
}

module apiLb 'modules/internal-load-balancer.bicep' = {
  name: 'api-lb'
  params: {
    location: location
    name: '${namePrefix}-api-ilb'
    subnetId: network.outputs.apiSubnetId
    privateIp: apiLbIp
    port: apiPort
  }
}

module api 'modules/scale-set.bicep' = {
  name: 'api-vmss'
  params: {
    location: location
    name: '${namePrefix}-api'
    subnetId: network.outputs.apiSubnetId
    vmSize: vmSize
    adminUsername: adminUsername
    sshPublicKey: sshPublicKey
    zones: zones
    instanceCount: minInstances
    // The api's identity is only used to pull its image.
    identity: { type: 'SystemAssigned' }
    port: apiPort
    loadBalancerBackendPoolIds: [apiLb.outputs.backendPoolId]
    loadBalancerProbeId: apiLb.outputs.probeId
    settings: {
      image: '${acr.properties.loginServer}/msi-pair-api:${imageTag}'
      port: apiPort
      env: {
        PORT: string(apiPort)
        HOST: '0.0.0.0'
        LOG_LEVEL: logLevel
        AUTH_TENANT_ID: tenantId
        // v2 tokens carry the client ID as aud; the URI is accepted too for v1-style requests.
        AUTH_AUDIENCE: '${apiClientId},${apiIdentifierUri}'
        AUTH_REQUIRED_ROLES: 'DoAll'
        AUTH_AUTHORITY_HOST: authorityHost
      }
    }
  }
}

module caller 'modules/scale-set.bicep' = {
  name: 'caller-vmss'
  params: {
    location: location
    name: '${namePrefix}-caller'
    subnetId: network.outputs.callerSubnetId
    vmSize: vmSize
    adminUsername: adminUsername
    sshPublicKey: sshPublicKey
    zones: zones
    instanceCount: minInstances
    identity: callerIdentityType == 'UserAssigned'
      ? { type: 'UserAssigned', userAssignedIdentities: { '${callerUami.id}': {} } }
      : { type: 'SystemAssigned' }
    port: callerPort
    settings: {
      image: '${acr.properties.loginServer}/msi-pair-caller:${imageTag}'
      port: callerPort
      clientId: callerIdentityType == 'UserAssigned' ? callerUami!.properties.clientId : ''
      env: union(
        {
          PORT: string(callerPort)
          HOST: '0.0.0.0'
          LOG_LEVEL: logLevel
          API_BASE_URL: apiLb.outputs.url
          API_SCOPE: '${apiIdentifierUri}/.default'
        },
        // Tells the Azure SDK which identity to use; without it IMDS picks the system-assigned one.
        callerIdentityType == 'UserAssigned' ? { AZURE_CLIENT_ID: callerUami!.properties.clientId } : {}
      )
    }
  }
}

var callerPrincipalId = callerIdentityType == 'UserAssigned'
  ? callerUami!.properties.principalId
  : caller.outputs.systemPrincipalId

resource apiAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acr.id, '${namePrefix}-api', acrPullRoleId)
  scope: acr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: api.outputs.systemPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource callerAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acr.id, '${namePrefix}-caller', acrPullRoleId)
  scope: acr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: callerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

module apiAutoscale 'modules/autoscale.bicep' = {
  name: 'api-autoscale'
  params: {
    location: location
    scaleSetName: api.outputs.name
    minCount: minInstances
    maxCount: maxInstances
  }
}

module callerAutoscale 'modules/autoscale.bicep' = {
  name: 'caller-autoscale'
  params: {
    location: location
    scaleSetName: caller.outputs.name
    minCount: minInstances
    maxCount: maxInstances
  }
}

// Prometheus (azure_sd_configs, authentication_method ManagedIdentity) needs to list VMs, scale
// set instances and NICs of this resource group: Reader here and nothing more.
resource prometheusIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-prometheus-id'
  location: location
}

resource prometheusReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, prometheusIdentity.id, readerRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: prometheusIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Object (principal) id of the caller\'s managed identity: pass it to deploy/entra/register-api.sh --caller-principal-id.')
output callerPrincipalId string = callerPrincipalId

@description('URL of the api behind its internal load balancer (reachable from the VNet only).')
output apiUrl string = apiLb.outputs.url

@description('Scale set names, for az vmss run-command and az vmss update.')
output callerScaleSetName string = caller.outputs.name
output apiScaleSetName string = api.outputs.name

@description('Client id of the identity to attach to the Prometheus VM (client_id in azure-vmss.yml).')
output prometheusIdentityClientId string = prometheusIdentity.properties.clientId

@description('Resource id of that identity, for az vm create --assign-identity.')
output prometheusIdentityId string = prometheusIdentity.id

@description('Subnet for the Prometheus VM.')
output monitoringSubnetId string = network.outputs.monitoringSubnetId
