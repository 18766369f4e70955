// msi-pair on VM Scale Sets: the caller and the api each on a Linux scale set, the api behind an
// internal load balancer, images pulled from ACR with managed identities (AcrPull), CPU autoscale,
// egress limited by NSGs, and an identity for a Prometheus server that discovers the instances
// with azure_sd_configs (deploy/prometheus/azure-vmss.yml).
//
// Deploy with: az deployment group create -g RG -f deploy/vmss/main.bicep -p ... (see deploy/README.md)
// The Entra objects (api app registration, role assignment) are made by deploy/entra/register-api.sh,
// and the caller's identity by deploy/identities/main.bicep: both before this template (README steps 3-5).

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

@description('Admin user of the instances (SSH key only; there is no password).')
param adminUsername string = 'azureuser'

@description('SSH public key for the admin user, e.g. the content of ~/.ssh/id_ed25519.pub. A public key is not a secret.')
param sshPublicKey string

@description('VM size of both scale sets.')
param vmSize string = 'Standard_B2s'

@description('Availability zones of both scale sets, the load balancer frontend and the NAT gateway. Pass [] in a region without zones.')
param zones array = ['1', '2', '3']

@description('Whether both scale sets already exist (a redeploy). True leaves sku.capacity out, so the count autoscale chose stands; false creates them with minInstances. No default, so a redeploy cannot forget it.')
param scaleSetsExist bool

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

resource acr 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {
  name: acrName
}

// Made by deploy/identities/main.bicep (README step 4) and given the api's app role (step 5) before
// this template runs, so the caller is ready as soon as it starts.
resource callerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: '${namePrefix}-caller-id'
}

// The api's identity only pulls its image (and sends logs). User-assigned, so that it and its AcrPull
// exist before the scale set that pulls with it.
resource apiIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${namePrefix}-api-id'
  location: location
}

// Grants come before the scale sets that pull with them (dependsOn below). The module names the
// assignment from the principal id: see ../shared/role-assignment.bicep.
module apiAcrPull '../shared/role-assignment.bicep' = {
  name: '${namePrefix}-api-acrpull'
  params: {
    registryName: acr.name
    principalId: apiIdentity.properties.principalId
    roleId: acrPullRoleId
  }
}

module callerAcrPull '../shared/role-assignment.bicep' = {
  name: '${namePrefix}-caller-acrpull'
  params: {
    registryName: acr.name
    principalId: callerIdentity.properties.principalId
    roleId: acrPullRoleId
  }
}

module network 'modules/network.bicep' = {
  name: '${namePrefix}-network'
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
    zones: zones
  }
}

module logs 'modules/logs.bicep' = {
  name: '${namePrefix}-vmss-logs'
  params: {
    location: location
    namePrefix: namePrefix
  }
}

module apiLb 'modules/internal-load-balancer.bicep' = {
  name: '${namePrefix}-api-lb'
  params: {
    location: location
    name: '${namePrefix}-api-ilb'
    subnetId: network.outputs.apiSubnetId
    privateIp: apiLbIp
    port: apiPort
    zones: zones
  }
}

module api 'modules/scale-set.bicep' = {
  name: '${namePrefix}-api-vmss'
  // The first pull needs the grant: identities and grants first, consumers after.
  dependsOn: [apiAcrPull]
  params: {
    location: location
    name: '${namePrefix}-api'
    subnetId: network.outputs.apiSubnetId
    vmSize: vmSize
    adminUsername: adminUsername
    sshPublicKey: sshPublicKey
    zones: zones
    initialCapacity: scaleSetsExist ? 0 : minInstances
    identityId: apiIdentity.id
    port: apiPort
    loadBalancerBackendPoolIds: [apiLb.outputs.backendPoolId]
    dataCollectionRuleId: logs.outputs.dataCollectionRuleId
    settings: {
      image: '${acr.properties.loginServer}/msi-pair-api:${imageTag}'
      port: apiPort
      clientId: apiIdentity.properties.clientId
      tenantId: tenantId
      // The api never needs a token of its own: its container gets no route to IMDS.
      blockImds: true
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
  name: '${namePrefix}-caller-vmss'
  dependsOn: [callerAcrPull]
  params: {
    location: location
    name: '${namePrefix}-caller'
    subnetId: network.outputs.callerSubnetId
    vmSize: vmSize
    adminUsername: adminUsername
    sshPublicKey: sshPublicKey
    zones: zones
    initialCapacity: scaleSetsExist ? 0 : minInstances
    identityId: callerIdentity.id
    port: callerPort
    dataCollectionRuleId: logs.outputs.dataCollectionRuleId
    settings: {
      image: '${acr.properties.loginServer}/msi-pair-caller:${imageTag}'
      port: callerPort
      clientId: callerIdentity.properties.clientId
      tenantId: tenantId
      // The caller's container gets its api token from IMDS.
      blockImds: false
      env: {
        PORT: string(callerPort)
        HOST: '0.0.0.0'
        LOG_LEVEL: logLevel
        API_BASE_URL: apiLb.outputs.url
        API_SCOPE: '${apiIdentifierUri}/.default'
        // Tells the Azure SDK which identity to use (IMDS needs it once a VM carries more than one).
        AZURE_CLIENT_ID: callerIdentity.properties.clientId
      }
    }
  }
}

module apiAutoscale 'modules/autoscale.bicep' = {
  name: '${namePrefix}-api-autoscale'
  params: {
    location: location
    scaleSetName: api.outputs.name
    minCount: minInstances
    maxCount: maxInstances
  }
}

module callerAutoscale 'modules/autoscale.bicep' = {
  name: '${namePrefix}-caller-autoscale'
  params: {
    location: location
    scaleSetName: caller.outputs.name
    minCount: minInstances
    maxCount: maxInstances
  }
}

// Prometheus (azure_sd_configs, authentication_method ManagedIdentity) needs to list VMs, scale
// set instances and NICs of this resource group: Reader here and nothing more.
resource prometheusIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${namePrefix}-prometheus-id'
  location: location
}

module prometheusReader '../shared/group-role-assignment.bicep' = {
  name: '${namePrefix}-prometheus-reader'
  params: {
    principalId: prometheusIdentity.properties.principalId
    roleId: readerRoleId
  }
}

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

@description('Log Analytics workspace that holds every instance\'s logs (table Syslog).')
output logsWorkspaceId string = logs.outputs.workspaceId
