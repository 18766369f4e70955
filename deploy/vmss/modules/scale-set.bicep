// One Linux VM Scale Set running one msi-pair service container (used for the caller and the api).
//
// customData = cloud-init.yaml, identical for both services: it installs docker and a systemd unit
// that reads *what* to run (image, port, environment) from the scale set's userData through IMDS.
// userData can be changed in place (no reimage); a timer on each instance notices the change and
// restarts the unit. customData, by contrast, is only read at first boot.

@description('Azure region.')
param location string

@description('Scale set name.')
param name string

@description('Subnet the instances join.')
param subnetId string

@description('VM size. B-series burstable is plenty for a Node.js service and keeps the demo cheap.')
param vmSize string

@description('Admin user name. Password login is disabled; only the SSH public key works.')
param adminUsername string

@description('SSH public key (ssh-ed25519 or ssh-rsa) for the admin user. Not a secret.')
param sshPublicKey string

@description('Identity block of the scale set (system-assigned and/or user-assigned).')
param identity object

@description('Port the container listens on; published on the host at the same number.')
param port int

@description('Content of userData: what the instance runs. See cloud-init.yaml (msi-pair-run).')
param settings object

@description('Instances at deployment; autoscale moves between its min and max afterwards.')
param instanceCount int

@description('Backend pools of a load balancer, empty when the service has none.')
param loadBalancerBackendPoolIds array = []

@description('Health probe of the load balancer used as the scale set health source; empty to use the Application Health extension instead.')
param loadBalancerProbeId string = ''

@description('Availability zones, e.g. ["1","2","3"]; empty in regions without zones.')
param zones array

var useLoadBalancerProbe = !empty(loadBalancerProbeId)

// Exactly one health source per scale set: the load balancer probe when there is one (the api),
// otherwise the Application Health extension (the caller has no load balancer).
var healthExtension = [
  {
    name: 'health'
    properties: {
      publisher: 'Microsoft.ManagedServices'
      type: 'ApplicationHealthLinux'
      typeHandlerVersion: '2.0'
      autoUpgradeMinorVersion: true
      settings: {
        protocol: 'http'
        port: port
        requestPath: '/healthz'
        intervalInSeconds: 10
        numberOfProbes: 3
        // /healthz answers 200 with no ApplicationHealthState body, which v2 reads as Healthy;
        // the grace period covers the first boot (docker install + image pull).
        gracePeriod: 600
      }
    }
  }
]

resource scaleSet 'Microsoft.Compute/virtualMachineScaleSets@2024-07-01' = {
  name: name
  location: location
  zones: empty(zones) ? null : zones
  identity: identity
  sku: {
    name: vmSize
    tier: 'Standard'
    capacity: instanceCount
  }
  properties: {
    orchestrationMode: 'Uniform'
    overprovision: false // overprovisioned extra instances would all pull and start the container
    singlePlacementGroup: false
    zoneBalance: empty(zones) ? null : true // only meaningful (and only accepted) with zones
    // Rolling upgrades: a model change (image tag, VM image, extension) is applied 20% at a time
    // and stops when upgraded instances do not report healthy, so a bad image never takes the
    // whole tier down. Manual would leave instances stale; Automatic would replace them all at once.
    upgradePolicy: {
      mode: 'Rolling'
      rollingUpgradePolicy: {
        maxBatchInstancePercent: 20
        maxUnhealthyInstancePercent: 20
        maxUnhealthyUpgradedInstancePercent: 20
        pauseTimeBetweenBatches: 'PT30S'
        prioritizeUnhealthyInstances: true
        rollbackFailedInstancesOnPolicyBreach: true
      }
    }
    // Automatic repairs replace an instance whose /healthz fails for longer than the grace period.
    // Safe because /healthz is process-local: it does not fail when Entra or the api is down, so
    // an outage of a dependency cannot make the platform churn through healthy instances.
    automaticRepairsPolicy: {
      enabled: true
      gracePeriod: 'PT30M'
      repairAction: 'Replace'
    }
    virtualMachineProfile: {
      // Lets docker stop the container gracefully (SIGTERM) before a scale-in deletes the VM.
      scheduledEventsProfile: {
        terminateNotificationProfile: {
          enable: true
          notBeforeTimeout: 'PT5M'
        }
      }
      osProfile: {
        computerNamePrefix: take(replace(name, '-', ''), 9)
        adminUsername: adminUsername
        customData: base64(loadTextContent('../cloud-init.yaml'))
        linuxConfiguration: {
          disablePasswordAuthentication: true
          ssh: {
            publicKeys: [
              {
                path: '/home/${adminUsername}/.ssh/authorized_keys'
                keyData: sshPublicKey
              }
            ]
          }
          provisionVMAgent: true
        }
      }
      userData: base64(string(settings))
      storageProfile: {
        imageReference: {
          publisher: 'Canonical'
          offer: 'ubuntu-24_04-lts'
          sku: 'server'
          version: 'latest'
        }
        osDisk: {
          createOption: 'FromImage'
          caching: 'ReadWrite'
          managedDisk: { storageAccountType: 'StandardSSD_LRS' }
        }
      }
      securityProfile: {
        securityType: 'TrustedLaunch'
        uefiSettings: {
          secureBootEnabled: true
          vTpmEnabled: true
        }
      }
      networkProfile: {
        healthProbe: useLoadBalancerProbe ? { id: loadBalancerProbeId } : null
        networkInterfaceConfigurations: [
          {
            name: 'nic'
            properties: {
              primary: true
              ipConfigurations: [
                {
                  name: 'ipconfig'
                  properties: {
                    // No publicIPAddressConfiguration: instances are reachable only inside the VNet.
                    subnet: { id: subnetId }
                    loadBalancerBackendAddressPools: [for poolId in loadBalancerBackendPoolIds: { id: poolId }]
                  }
                }
              ]
            }
          }
        ]
      }
      extensionProfile: {
        extensions: useLoadBalancerProbe ? [] : healthExtension
      }
      diagnosticsProfile: {
        bootDiagnostics: { enabled: true } // managed storage: serial console and cloud-init output
      }
    }
  }
}

output id string = scaleSet.id
output name string = scaleSet.name
output systemPrincipalId string = scaleSet.identity.?principalId ?? ''
