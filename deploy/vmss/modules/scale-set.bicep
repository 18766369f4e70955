// One Linux VM Scale Set running one msi-pair service container (used for the caller and the api).
//
// customData = cloud-init.yaml, identical for both services and read at first boot only: it installs
// docker and the msi-pair units and scripts. *What* an instance runs (image, port, environment) is a
// setting of the `msi-pair` Custom Script extension. Changing it (a new image tag) is a change of the
// scale set model, so the rolling upgrade applies it batch by batch: on each instance the extension
// pulls the new image, then swaps the container, then waits for /readyz; the Application Health
// extension, sequenced after it, judges the batch, and a batch that stays unhealthy stops the upgrade
// and rolls the failed instances back.
// Learn: "Configure rolling upgrades on Virtual Machine Scale Sets"; "Sequence extension provisioning
// in Virtual Machine Scale Sets"; "Use the Azure Custom Script Extension Version 2 with Linux VMs".

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

@description('Resource id of the user-assigned identity the instances pull images (and send logs) with; the caller also gets its api token with it.')
param identityId string

@description('Port the container listens on; published on the host at the same number. Also where /readyz is probed.')
param port int

@description('What the instance runs: image, port, clientId, tenantId, blockImds, env. See msi-pair apply in cloud-init.yaml.')
param settings object

@description('sku.capacity to create the scale set with; 0 leaves it out, so that a redeploy keeps the count autoscale chose.')
@minValue(0)
param initialCapacity int

@description('Backend pools of a load balancer, empty when the service has none.')
param loadBalancerBackendPoolIds array = []

@description('Availability zones, e.g. ["1","2","3"]; empty in regions without zones.')
param zones array

@description('Data collection rule the Azure Monitor Agent of every instance follows.')
param dataCollectionRuleId string

// The extension that runs the service. Its name is what the health extension is sequenced after.
var applyExtensionName = 'msi-pair'

resource scaleSet 'Microsoft.Compute/virtualMachineScaleSets@2026-04-01' = {
  name: name
  location: location
  zones: empty(zones) ? null : zones
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  // A capacity in every PUT would reset what autoscale chose: only a new scale set gets one.
  sku: union({ name: vmSize, tier: 'Standard' }, initialCapacity > 0 ? { capacity: initialCapacity } : {})
  properties: {
    orchestrationMode: 'Uniform'
    overprovision: false // overprovisioned extra instances would all pull and start the container
    singlePlacementGroup: false
    zoneBalance: empty(zones) ? null : true // only meaningful (and only accepted) with zones
    // Rolling upgrades: a model change (settings, VM image, extension) is applied 20% at a time and
    // stops when upgraded instances do not report healthy; failed instances go back to the previous
    // model. Manual would leave instances stale; Automatic would replace them all at once.
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
    // Automatic repairs replace an instance whose /readyz fails for longer than the grace period.
    // Readiness latches on the api (keys loaded once) and needs a token on the caller (renewed long
    // before it expires), so an Entra outage shorter than a token's lifetime does not make the
    // platform churn through healthy instances.
    automaticRepairsPolicy: {
      enabled: true
      gracePeriod: 'PT30M'
      repairAction: 'Replace'
    }
    virtualMachineProfile: {
      // msi-pair-events (cloud-init.yaml) polls Scheduled Events: on a Terminate it takes the instance
      // out of the load balancer, stops the container gracefully and approves the event.
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
        // No healthProbe here: the Application Health extension is the scale set's one health source.
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
        extensions: [
          {
            name: applyExtensionName
            properties: {
              publisher: 'Microsoft.Azure.Extensions'
              type: 'CustomScript'
              typeHandlerVersion: '2.1'
              autoUpgradeMinorVersion: true
              settings: {
                // Waits for first-boot cloud-init (docker, the scripts), then pulls, swaps and waits
                // for /readyz; a non-zero exit fails the instance's upgrade. The settings hold no
                // secret (image, port, ids, environment), so they need no protectedSettings.
                commandToExecute: 'cloud-init status --wait >/dev/null || true; /usr/local/libexec/msi-pair/apply ${base64(string(settings))}'
              }
            }
          }
          {
            name: 'health'
            properties: {
              publisher: 'Microsoft.ManagedServices'
              type: 'ApplicationHealthLinux'
              // Binary Health States: HTTP 200 is Healthy, anything else Unhealthy. /readyz answers
              // {"status":"ready"}, not the ApplicationHealthState body that 2.0 (Rich) would need.
              typeHandlerVersion: '1.0'
              autoUpgradeMinorVersion: true
              provisionAfterExtensions: [applyExtensionName]
              settings: {
                protocol: 'http'
                port: port
                requestPath: '/readyz'
                intervalInSeconds: 10
                numberOfProbes: 3
              }
            }
          }
          {
            name: 'monitor'
            properties: {
              publisher: 'Microsoft.Azure.Monitor'
              type: 'AzureMonitorLinuxAgent'
              typeHandlerVersion: '1.0'
              autoUpgradeMinorVersion: true
              enableAutomaticUpgrade: true
              settings: {
                authentication: {
                  managedIdentity: {
                    'identifier-name': 'mi_res_id'
                    'identifier-value': identityId
                  }
                }
              }
            }
          }
        ]
      }
      diagnosticsProfile: {
        bootDiagnostics: { enabled: true } // managed storage: serial console and cloud-init output
      }
    }
  }
}

resource logs 'Microsoft.Insights/dataCollectionRuleAssociations@2024-03-11' = {
  name: 'msi-pair-syslog'
  scope: scaleSet
  properties: {
    dataCollectionRuleId: dataCollectionRuleId
  }
}

output id string = scaleSet.id
output name string = scaleSet.name
