// Network for the VM Scale Set deployment: one VNet, one subnet per tier, an NSG per subnet that
// allows only the traffic the services need, and a NAT gateway as the single way out.
//
// Why a NAT gateway: new subnets have no default outbound access, and the internal load balancer
// in front of the api gives none either. The NAT gateway's public IP is used for egress only;
// no instance and no load balancer gets a public IP.

@description('Azure region of the network resources.')
param location string

@description('Prefix for resource names, e.g. "msi-pair".')
param namePrefix string

@description('Address space of the VNet.')
param vnetAddressPrefix string

@description('Subnet of the caller scale set.')
param callerSubnetPrefix string

@description('Subnet of the api scale set and its internal load balancer.')
param apiSubnetPrefix string

@description('Subnet reserved for a Prometheus server (azure_sd_configs scrapes both tiers from here).')
param monitoringSubnetPrefix string

@description('TCP port the caller listens on (also its /metrics port).')
param callerPort int

@description('TCP port the api listens on (also its /metrics port).')
param apiPort int

@description('Allow outbound TCP 80 to the Internet so cloud-init can install docker from the distribution mirrors at first boot (apt verifies package signatures; the mirrors have no service tag). Set false with an image that already has docker.')
param allowPackageMirrorEgress bool

@description('Availability zones, e.g. ["1","2","3"]: the NAT gateway and its public IP are then zone-redundant (StandardV2); empty in regions without zones.')
param zones array

// Standard NAT gateways are zonal at best (one zone's outage cuts every instance's egress);
// StandardV2 spans the region's zones and needs StandardV2 public IPs (Learn: "Reliability in Azure NAT Gateway").
var natSku = empty(zones) ? 'Standard' : 'StandardV2'

// Outbound rules shared by both tiers. Everything else to the Internet is denied at 4000.
// IMDS (169.254.169.254) and the platform DNS/wire server (168.63.129.16) are not filtered by NSGs,
// so the managed identity token and name resolution keep working.
var registryEgress = [
  {
    name: 'allow-acr-https'
    properties: {
      description: 'Image pulls: ACR login/registry endpoints.'
      priority: 200
      direction: 'Outbound'
      access: 'Allow'
      protocol: 'Tcp'
      sourceAddressPrefix: 'VirtualNetwork'
      sourcePortRange: '*'
      destinationAddressPrefix: 'AzureContainerRegistry.${location}'
      destinationPortRange: '443'
    }
  }
  {
    name: 'allow-storage-https'
    properties: {
      description: 'Image layers: ACR redirects blob downloads to regional storage.'
      priority: 210
      direction: 'Outbound'
      access: 'Allow'
      protocol: 'Tcp'
      sourceAddressPrefix: 'VirtualNetwork'
      sourcePortRange: '*'
      destinationAddressPrefix: 'Storage.${location}'
      destinationPortRange: '443'
    }
  }
]

var mirrorEgress = allowPackageMirrorEgress
  ? [
      {
        name: 'allow-package-mirrors-http'
        properties: {
          description: 'cloud-init installs docker.io from the distribution mirrors (signed packages over HTTP).'
          priority: 300
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRange: '80'
        }
      }
    ]
  : []

var denyRest = [
  {
    name: 'deny-internet-outbound'
    properties: {
      description: 'Nothing else leaves the VNet.'
      priority: 4000
      direction: 'Outbound'
      access: 'Deny'
      protocol: '*'
      sourceAddressPrefix: '*'
      sourcePortRange: '*'
      destinationAddressPrefix: 'Internet'
      destinationPortRange: '*'
    }
  }
  {
    name: 'deny-vnet-inbound'
    properties: {
      description: 'Only the service port (rules above) is reachable inside the VNet; no SSH: use az vmss run-command.'
      priority: 4000
      direction: 'Inbound'
      access: 'Deny'
      protocol: '*'
      sourceAddressPrefix: 'VirtualNetwork'
      sourcePortRange: '*'
      destinationAddressPrefix: '*'
      destinationPortRange: '*'
    }
  }
]

resource callerNsg 'Microsoft.Network/networkSecurityGroups@2026-03-01' = {
  name: '${namePrefix}-caller-nsg'
  location: location
  properties: {
    securityRules: concat(
      [
        {
          name: 'allow-monitoring-to-caller'
          properties: {
            description: 'Prometheus scrapes /metrics; operators call /call from the monitoring subnet.'
            priority: 100
            direction: 'Inbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: monitoringSubnetPrefix
            sourcePortRange: '*'
            destinationAddressPrefix: callerSubnetPrefix
            destinationPortRange: string(callerPort)
          }
        }
        {
          name: 'allow-caller-to-api'
          properties: {
            description: 'The only east-west call: caller -> api (internal load balancer).'
            priority: 100
            direction: 'Outbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: callerSubnetPrefix
            sourcePortRange: '*'
            destinationAddressPrefix: apiSubnetPrefix
            destinationPortRange: string(apiPort)
          }
        }
        {
          name: 'deny-vnet-outbound'
          properties: {
            description: 'No other east-west traffic from the caller tier.'
            priority: 3900
            direction: 'Outbound'
            access: 'Deny'
            protocol: '*'
            sourceAddressPrefix: '*'
            sourcePortRange: '*'
            destinationAddressPrefix: 'VirtualNetwork'
            destinationPortRange: '*'
          }
        }
      ],
      registryEgress,
      mirrorEgress,
      denyRest
    )
  }
}

resource apiNsg 'Microsoft.Network/networkSecurityGroups@2026-03-01' = {
  name: '${namePrefix}-api-nsg'
  location: location
  properties: {
    securityRules: concat(
      [
        {
          name: 'allow-caller-to-api'
          properties: {
            description: 'The caller tier calls the api through the internal load balancer.'
            priority: 100
            direction: 'Inbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: callerSubnetPrefix
            sourcePortRange: '*'
            destinationAddressPrefix: apiSubnetPrefix
            destinationPortRange: string(apiPort)
          }
        }
        {
          name: 'allow-monitoring-to-api'
          properties: {
            description: 'Prometheus scrapes /metrics on each instance.'
            priority: 110
            direction: 'Inbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: monitoringSubnetPrefix
            sourcePortRange: '*'
            destinationAddressPrefix: apiSubnetPrefix
            destinationPortRange: string(apiPort)
          }
        }
        {
          name: 'allow-lb-probe'
          properties: {
            description: 'Load balancer health probe on /readyz (which instances get new flows).'
            priority: 120
            direction: 'Inbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: 'AzureLoadBalancer'
            sourcePortRange: '*'
            destinationAddressPrefix: apiSubnetPrefix
            destinationPortRange: string(apiPort)
          }
        }
        {
          name: 'allow-entra-https'
          properties: {
            description: 'The api fetches the Entra OpenID metadata and signing keys (JWKS).'
            priority: 100
            direction: 'Outbound'
            access: 'Allow'
            protocol: 'Tcp'
            sourceAddressPrefix: apiSubnetPrefix
            sourcePortRange: '*'
            destinationAddressPrefix: 'AzureActiveDirectory'
            destinationPortRange: '443'
          }
        }
        {
          name: 'deny-vnet-outbound'
          properties: {
            description: 'The api calls nothing inside the VNet.'
            priority: 3900
            direction: 'Outbound'
            access: 'Deny'
            protocol: '*'
            sourceAddressPrefix: '*'
            sourcePortRange: '*'
            destinationAddressPrefix: 'VirtualNetwork'
            destinationPortRange: '*'
          }
        }
      ],
      registryEgress,
      mirrorEgress,
      denyRest
    )
  }
}

resource natIp 'Microsoft.Network/publicIPAddresses@2026-03-01' = {
  name: '${namePrefix}-nat-ip'
  location: location
  zones: empty(zones) ? null : zones
  sku: { name: natSku }
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

resource nat 'Microsoft.Network/natGateways@2026-03-01' = {
  name: '${namePrefix}-nat'
  location: location
  zones: empty(zones) ? null : zones
  sku: { name: natSku }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [{ id: natIp.id }]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2026-03-01' = {
  name: '${namePrefix}-vnet'
  location: location
  properties: {
    addressSpace: { addressPrefixes: [vnetAddressPrefix] }
    subnets: [
      {
        name: 'caller'
        properties: {
          addressPrefix: callerSubnetPrefix
          networkSecurityGroup: { id: callerNsg.id }
          natGateway: { id: nat.id }
          defaultOutboundAccess: false
        }
      }
      {
        name: 'api'
        properties: {
          addressPrefix: apiSubnetPrefix
          networkSecurityGroup: { id: apiNsg.id }
          natGateway: { id: nat.id }
          defaultOutboundAccess: false
        }
      }
      {
        name: 'monitoring'
        properties: {
          addressPrefix: monitoringSubnetPrefix
          natGateway: { id: nat.id }
          defaultOutboundAccess: false
        }
      }
    ]
  }
}

output callerSubnetId string = vnet.properties.subnets[0].id
output apiSubnetId string = vnet.properties.subnets[1].id
output monitoringSubnetId string = vnet.properties.subnets[2].id
