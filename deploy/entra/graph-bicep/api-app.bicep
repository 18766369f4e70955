// NOT COMPILED IN CI: the Microsoft Graph extension's types come from a container registry this
// build machine cannot reach, so `bicep build` stops at BCP192 (restore failed). The CI test checks
// exactly that and nothing more; deploy/entra/register-api.sh is the tested path.
//
// Second path to the same Entra objects as register-api.sh, declaratively (Bicep >= 0.36.1, Graph
// extension v1.0). Deploy after deploy/identities/main.bicep and before the VMSS/Container Apps
// templates (README steps 4-5), passing the identity deployment's callerPrincipalId:
//   az deployment group create -g RG -f deploy/entra/graph-bicep/api-app.bicep -p callerPrincipalId=...
// Known Graph-extension issue: an identity created minutes before may not be replicated yet
// ("Not a valid reference update"); rerunning the deployment succeeds.
extension microsoftGraphV1

@description('Key the app registration is found and upserted by.')
param uniqueName string = 'msi-pair-api'

@description('Application ID URI of the api.')
param identifierUri string = 'api://msi-pair-api'

@description('Object (principal) id of the caller\'s managed identity; empty to skip the assignment.')
param callerPrincipalId string = ''

// Deterministic, so redeploying never changes the role id that assignments point at. register-api.sh
// generates a random id instead; do not switch an existing app between the two paths.
var doAllRoleId = guid(tenant().tenantId, uniqueName, 'DoAll')

resource apiApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: 'msi-pair api'
  signInAudience: 'AzureADMyOrg'
  identifierUris: [identifierUri]
  api: { requestedAccessTokenVersion: 2 }
  appRoles: [
    {
      id: doAllRoleId
      value: 'DoAll'
      displayName: 'DoAll'
      description: 'Service-to-service callers of the msi-pair api (app-only tokens).'
      allowedMemberTypes: ['Application']
      isEnabled: true
    }
  ]
}

resource apiSp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: apiApp.appId
  appRoleAssignmentRequired: true
}

resource callerAssignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (!empty(callerPrincipalId)) {
  principalId: callerPrincipalId
  resourceId: apiSp.id
  appRoleId: doAllRoleId
}

output apiClientId string = apiApp.appId
output apiServicePrincipalId string = apiSp.id
