// msi-pair on Azure Container Apps: one zone-redundant environment in its own VNet, the api with
// internal ingress, the caller with its user-assigned identity (its api token comes from the
// platform's identity endpoint, IDENTITY_ENDPOINT/IDENTITY_HEADER, not IMDS), probes on /healthz and /readyz, HTTP scale rules,
// images pulled from ACR with a user-assigned identity, logs to Log Analytics and metrics to Azure
// Monitor managed Prometheus through a Prometheus agent sidecar (see prometheus-agent.yml).
//
// Why a separate user-assigned identity for image pulls: a system-assigned identity only exists
// once the app exists, but the app cannot be created before its identity may pull the image.
// The pull identity is created and granted AcrPull first. The caller's own identity is made earlier
// still (deploy/identities/main.bicep, README step 4) and holds the api's app role before this
// template runs (step 5): the first caller revision becomes ready only once it holds a token, and
// the deployment waits for that, so the role cannot come after it.
//
// Deploy with: az deployment group create -g RG -f deploy/containerapps/main.bicep -p ... (see deploy/README.md)

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

@description('log level of both services (pino levels).')
@allowed(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
param logLevel string = 'info'

@description('Empty (default): the caller is internal like the api. A CIDR such as 203.0.113.7/32: the caller gets external ingress allowed from that range only, so you can call /call from your machine.')
param callerAllowedSourceCidr string = ''

@description('Spread replicas over the region\'s availability zones. Needs the VNet below; can only be set when the environment is created. Pass false in a region without zones.')
param zoneRedundant bool = true

@description('Minimum replicas per app: 2 or more, so that a zone-redundant environment has a replica in a second zone.')
@minValue(0)
param minReplicas int = 2

@description('Maximum replicas per app.')
@minValue(1)
param maxReplicas int = 5

@description('Send per-replica metrics to Azure Monitor managed Prometheus with a Prometheus agent sidecar.')
param enableManagedPrometheus bool = true

@description('Address space of the environment\'s VNet.')
param vnetAddressPrefix string = '10.50.0.0/16'

@description('Infrastructure subnet of the environment (a workload profiles environment needs /27 or larger).')
param infrastructureSubnetPrefix string = '10.50.0.0/23'

@description('Repository:tag of the Prometheus image in the ACR (import it with az acr import, see README). Must be >= 2.45 for remote_write azuread.')
param prometheusImage string = 'prom/prometheus:v2.53.4'

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var callerName = '${namePrefix}-caller'
var apiName = '${namePrefix}-api'
var authorityHost = 'https://${split(environment().authentication.loginEndpoint, '/')[2]}'

resource acr 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {
  name: acrName
}

// Made by deploy/identities/main.bicep (README step 4) and given the api's app role (step 5).
resource callerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: '${namePrefix}-caller-id'
}

resource platformIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${namePrefix}-aca-platform-id'
  location: location
}

// A module, so that the assignment's name can derive from the principal id (see the module).
module platformAcrPull '../shared/role-assignment.bicep' = {
  name: '${namePrefix}-aca-acrpull'
  params: {
    registryName: acr.name
    principalId: platformIdentity.properties.principalId
    roleId: acrPullRoleId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: '${namePrefix}-aca-monitoring'
  params: {
    location: location
    namePrefix: namePrefix
    metricsPublisherPrincipalId: platformIdentity.properties.principalId
  }
}

// Zone redundancy needs an infrastructure subnet of the environment's own (Learn: "Reliability in
// Azure Container Apps"), delegated to Microsoft.App/environments for a workload profiles environment.
resource vnet 'Microsoft.Network/virtualNetworks@2026-03-01' = {
  name: '${namePrefix}-aca-vnet'
  location: location
  properties: {
    addressSpace: { addressPrefixes: [vnetAddressPrefix] }
    subnets: [
      {
        name: 'infrastructure'
        properties: {
          addressPrefix: infrastructureSubnetPrefix
          delegations: [{ name: 'containerapps', properties: { serviceName: 'Microsoft.App/environments' } }]
        }
      }
    ]
  }
}

resource appEnvironment 'Microsoft.App/managedEnvironments@2026-07-01' = {
  name: '${namePrefix}-env'
  location: location
  properties: {
    zoneRedundant: zoneRedundant
    vnetConfiguration: {
      infrastructureSubnetId: vnet.properties.subnets[0].id
      // Apps stay reachable only as their ingress says (the api internal, the caller by CIDR).
      internal: false
    }
    workloadProfiles: [{ name: 'Consumption', workloadProfileType: 'Consumption' }]
    // Logs leave through the diagnostic setting below (no workspace key in the environment).
    appLogsConfiguration: { destination: 'azure-monitor' }
  }
}

// 2021-05-01-preview is the newest version of diagnostic settings and the first that types them as
// an extension resource with categoryGroup; the only GA version (2016-09-01) types neither.
#disable-next-line use-recent-api-versions
resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'logs'
  scope: appEnvironment
  properties: {
    workspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    logs: [{ categoryGroup: 'allLogs', enabled: true }]
  }
}

var agentImage = enableManagedPrometheus ? '${acr.properties.loginServer}/${prometheusImage}' : ''

module api 'modules/service-app.bicep' = {
  name: '${namePrefix}-api-app'
  dependsOn: [platformAcrPull]
  params: {
    location: location
    name: apiName
    jobName: 'api'
    environmentId: appEnvironment.id
    image: '${acr.properties.loginServer}/msi-pair-api:${imageTag}'
    port: 3001
    platformIdentityId: platformIdentity.id
    platformIdentityClientId: platformIdentity.properties.clientId
    externalIngress: false
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    concurrentRequestsPerReplica: 50
    metricsAgentImage: agentImage
    remoteWriteUrl: monitoring.outputs.remoteWriteUrl
    env: [
      { name: 'PORT', value: '3001' }
      { name: 'HOST', value: '0.0.0.0' }
      { name: 'LOG_LEVEL', value: logLevel }
      { name: 'AUTH_TENANT_ID', value: tenantId }
      // v2 tokens carry the client ID as aud; the URI is accepted too for v1-style requests.
      { name: 'AUTH_AUDIENCE', value: '${apiClientId},${apiIdentifierUri}' }
      { name: 'AUTH_REQUIRED_ROLES', value: 'DoAll' }
      { name: 'AUTH_AUTHORITY_HOST', value: authorityHost }
    ]
  }
}

module caller 'modules/service-app.bicep' = {
  name: '${namePrefix}-caller-app'
  dependsOn: [platformAcrPull]
  params: {
    location: location
    name: callerName
    jobName: 'caller'
    environmentId: appEnvironment.id
    image: '${acr.properties.loginServer}/msi-pair-caller:${imageTag}'
    port: 3000
    platformIdentityId: platformIdentity.id
    platformIdentityClientId: platformIdentity.properties.clientId
    additionalIdentityIds: [callerIdentity.id]
    externalIngress: !empty(callerAllowedSourceCidr)
    allowedSourceCidr: callerAllowedSourceCidr
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    concurrentRequestsPerReplica: 50
    metricsAgentImage: agentImage
    remoteWriteUrl: monitoring.outputs.remoteWriteUrl
    env: [
      { name: 'PORT', value: '3000' }
      { name: 'HOST', value: '0.0.0.0' }
      { name: 'LOG_LEVEL', value: logLevel }
      { name: 'API_BASE_URL', value: 'https://${api.outputs.fqdn}' }
      { name: 'API_SCOPE', value: '${apiIdentifierUri}/.default' }
      // The api token must come from the caller's identity (which holds the app role), not from the
      // platform identity that pulls images: with two identities the SDK must be told which.
      { name: 'AZURE_CLIENT_ID', value: callerIdentity.properties.clientId }
    ]
  }
}

@description('Internal URL of the api (reachable inside the environment only).')
output apiUrl string = 'https://${api.outputs.fqdn}'

@description('URL of the caller (internal unless callerAllowedSourceCidr is set).')
output callerUrl string = 'https://${caller.outputs.fqdn}'

@description('Azure Monitor workspace (managed Prometheus): grant yourself Monitoring Data Reader on it to query.')
output metricsWorkspaceId string = monitoring.outputs.metricsWorkspaceId

@description('PromQL endpoint of managed Prometheus (query with an Entra token, e.g. from Grafana).')
output prometheusQueryEndpoint string = monitoring.outputs.prometheusQueryEndpoint
