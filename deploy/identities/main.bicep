// Step 4 of deploy/README.md, before either service template: the caller's user-assigned managed
// identity. It exists on its own, so its principal id is known, and the api's app role can be
// assigned to it (deploy/entra/register-api.sh --caller-principal-id), before anything runs with it.
// The service templates (vmss/main.bicep, containerapps/main.bicep) reference it by name and never
// create it: on Container Apps the first revision must become ready, and the caller is ready only
// once it holds a token, which Entra issues only with the role (appRoleAssignmentRequired).
// Learn: "Managed identities in Azure Container Apps"; "How to manage user-assigned managed identities".
//
// Deploy with: az deployment group create -g RG -n msi-pair-identities -f deploy/identities/main.bicep

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Prefix of every resource name; the service templates must be given the same one.')
@maxLength(16)
param namePrefix string = 'msi-pair'

// The identity outlives every scale set, revision and redeploy, and with it the app role assignment.
resource caller 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${namePrefix}-caller-id'
  location: location
}

@description('Object (principal) id of the caller identity: pass it to deploy/entra/register-api.sh --caller-principal-id.')
output callerPrincipalId string = caller.properties.principalId

@description('Client id of the caller identity (the services get it as AZURE_CLIENT_ID).')
output callerClientId string = caller.properties.clientId

@description('Name of the caller identity, as the service templates reference it.')
output callerIdentityName string = caller.name
