// Where the instances' logs go: a Log Analytics workspace and a data collection rule that the Azure
// Monitor Agent on every instance follows. The containers log to journald (docker's journald log
// driver), which Ubuntu forwards to syslog; the rule collects syslog, so each line of every instance
// ends up in the Syslog table, kept when the instance is deleted or repaired.
// Learn: "Collect Syslog events with Azure Monitor Agent"; "Azure Monitor Agent overview".

@description('Azure region.')
param location string

@description('Prefix of every resource name.')
param namePrefix string

@description('Days of log retention.')
@minValue(30)
param retentionDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2026-03-01' = {
  name: '${namePrefix}-vmss-logs'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionDays
    // Ingestion only through Azure Monitor (the agent's managed identity), never with workspace keys.
    features: { disableLocalAuth: true }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
  name: '${namePrefix}-vmss-syslog'
  location: location
  kind: 'Linux'
  properties: {
    dataSources: {
      syslog: [
        {
          name: 'journal'
          streams: ['Microsoft-Syslog']
          // docker's journald driver writes without a facility: journald forwards those as "user";
          // daemon and syslog carry docker, systemd and cloud-init themselves.
          facilityNames: ['user', 'daemon', 'syslog', 'auth']
          logLevels: ['Info', 'Notice', 'Warning', 'Error', 'Critical', 'Alert', 'Emergency']
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: ['Microsoft-Syslog']
        destinations: ['workspace']
      }
    ]
  }
}

output dataCollectionRuleId string = rule.id
output workspaceId string = workspace.id
