// Where Container Apps telemetry goes:
// - logs: a Log Analytics workspace, fed by a diagnostic setting (the environment's
//   "azure-monitor" log destination), so no workspace shared key is ever handed to the environment;
// - metrics: an Azure Monitor workspace (managed Prometheus) with its own data collection endpoint
//   and rule, written to by the Prometheus agent sidecars with a managed identity.

@description('Azure region.')
param location string

@description('Prefix of every resource name.')
param namePrefix string

@description('Principal id of the identity the Prometheus sidecars remote-write with.')
param metricsPublisherPrincipalId string

@description('Days of log retention.')
@minValue(30)
param logRetentionDays int = 30

var monitoringMetricsPublisherRoleDefinitionId = subscriptionResourceId(
  'Microsoft.Authorization/roleDefinitions',
  '3913510d-42f4-4e42-8a64-420c390055eb'
)

resource logs 'Microsoft.OperationalInsights/workspaces@2026-03-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: logRetentionDays
    // Ingestion only through Azure Monitor (diagnostic settings), not with workspace keys.
    features: { disableLocalAuth: true }
  }
}

resource metrics 'Microsoft.Monitor/accounts@2025-10-03' = {
  name: '${namePrefix}-metrics'
  location: location
}

resource endpoint 'Microsoft.Insights/dataCollectionEndpoints@2024-03-11' = {
  name: '${namePrefix}-metrics-dce'
  location: location
  properties: {}
}

resource rule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
  name: '${namePrefix}-metrics-dcr'
  location: location
  properties: {
    dataCollectionEndpointId: endpoint.id
    destinations: {
      monitoringAccounts: [
        {
          name: 'managedPrometheus'
          accountResourceId: metrics.id
        }
      ]
    }
    dataFlows: [
      {
        streams: ['Microsoft-PrometheusMetrics']
        destinations: ['managedPrometheus']
      }
    ]
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  // Named from the principal (a parameter, so known when this module starts): Learn "Create Azure
  // RBAC resources by using Bicep".
  name: guid(rule.id, metricsPublisherPrincipalId, monitoringMetricsPublisherRoleDefinitionId)
  scope: rule
  properties: {
    roleDefinitionId: monitoringMetricsPublisherRoleDefinitionId
    principalId: metricsPublisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output logAnalyticsWorkspaceId string = logs.id
output remoteWriteUrl string = '${endpoint.properties.metricsIngestion.endpoint}/dataCollectionRules/${rule.properties.immutableId}/streams/Microsoft-PrometheusMetrics/api/v1/write?api-version=2023-04-24'
output metricsWorkspaceId string = metrics.id
output prometheusQueryEndpoint string = metrics.properties.metrics.prometheusQueryEndpoint
