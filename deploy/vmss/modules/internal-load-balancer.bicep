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

@description('Availability zones of the frontend, e.g. ["1","2","3"] for a zone-redundant one; empty in regions without zones.')
param zones array

resource lb 'Microsoft.Network/loadBalancers@2026-03-01' = {
  name: name
  location: location
  sku: { name: 'Standard' }
  properties: {
    frontendIPConfigurations: [
      {
        name: 'frontend'
        // Several zones make the frontend zone-redundant: it survives the loss of one zone.
        zones: empty(zones) ? null : zones
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
        // Readiness, the same endpoint the scale set's health extension probes: an instance gets
        // new flows only once its signing keys are loaded, and leaves rotation as soon as it is
        // not ready (msi-pair-events also uses this to drain it before a Terminate).
        name: 'readyz'
        properties: {
          protocol: 'Http'
          port: port
          requestPath: '/readyz'
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
          probe: { id: resourceId('Microsoft.Network/loadBalancers/probes', name, 'readyz') }
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
output url string = 'http://${privateIp}:${port}'
