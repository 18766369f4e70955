// Internal Standard load balancer in front of the api scale set. Internal by design: the api is
// only ever called by the caller tier, so it gets a private frontend IP and no public IP.

@description('Azure region.')
param location string

@description('Load balancer name.')
param name string

@description('Subnet of the frontend IP (the api subnet).')
param subnetId string

@description('Static private IP of the frontend; the caller\'s API_BASE_URL points at it.')
param privateIp string

@description('Port of the api; the load balancer forwards the same port.')
param port int

resource lb 'Microsoft.Network/loadBalancers@2024-05-01' = {
  name: name
  location: location
  sku: { name: 'Standard' }
  properties: {
    frontendIPConfigurations: [
      {
        name: 'frontend'
        properties: {
          subnet: { id: subnetId }
          privateIPAllocationMethod: 'Static'
          privateIPAddress: privateIp
        }
      }
    ]
    backendAddressPools: [{ name: 'api' }]
    probes: [
      {
        // Also the scale set's health source (rolling upgrades, automatic repairs), which is why
        // it checks liveness (/healthz) and not readiness: see scale-set.bicep.
        name: 'healthz'
        properties: {
          protocol: 'Http'
          port: port
          requestPath: '/healthz'
          intervalInSeconds: 5
          probeThreshold: 2
        }
      }
    ]
    loadBalancingRules: [
      {
        name: 'api'
        properties: {
          frontendIPConfiguration: {
            id: resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', name, 'frontend')
          }
          backendAddressPool: { id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', name, 'api') }
          probe: { id: resourceId('Microsoft.Network/loadBalancers/probes', name, 'healthz') }
          protocol: 'Tcp'
          frontendPort: port
          backendPort: port
          idleTimeoutInMinutes: 4
          enableTcpReset: true
        }
      }
    ]
  }
}

output backendPoolId string = lb.properties.backendAddressPools[0].id
output probeId string = lb.properties.probes[0].id
output url string = 'http://${privateIp}:${port}'
