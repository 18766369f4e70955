// CPU-based autoscale for one scale set. Node.js services here are CPU-bound on token validation
// (api) and TLS (caller), so CPU is a reasonable first signal; scale-in is slower than scale-out to
// avoid flapping.

@description('Azure region.')
param location string

@description('Name of the scale set to scale.')
param scaleSetName string

@description('Minimum instance count (>= 2 keeps the tier available during upgrades and repairs).')
@minValue(1)
param minCount int

@description('Maximum instance count.')
@minValue(1)
param maxCount int

resource scaleSet 'Microsoft.Compute/virtualMachineScaleSets@2026-04-01' existing = {
  name: scaleSetName
}

var cpuRule = {
  metricName: 'Percentage CPU'
  metricNamespace: 'microsoft.compute/virtualmachinescalesets'
  metricResourceUri: scaleSet.id
  timeGrain: 'PT1M'
  statistic: 'Average'
  timeAggregation: 'Average'
}

resource autoscale 'Microsoft.Insights/autoscalesettings@2022-10-01' = {
  name: '${scaleSetName}-autoscale'
  location: location
  properties: {
    enabled: true
    targetResourceUri: scaleSet.id
    profiles: [
      {
        name: 'cpu'
        capacity: {
          minimum: string(minCount)
          maximum: string(maxCount)
          default: string(minCount)
        }
        rules: [
          {
            metricTrigger: union(cpuRule, { timeWindow: 'PT5M', operator: 'GreaterThan', threshold: 60 })
            scaleAction: { direction: 'Increase', type: 'ChangeCount', value: '1', cooldown: 'PT5M' }
          }
          {
            metricTrigger: union(cpuRule, { timeWindow: 'PT10M', operator: 'LessThan', threshold: 25 })
            scaleAction: { direction: 'Decrease', type: 'ChangeCount', value: '1', cooldown: 'PT10M' }
          }
        ]
      }
    ]
  }
}
