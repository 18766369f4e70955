// One Azure role assignment on the resource group it is deployed to, named from its principal id:
// see role-assignment.bicep for why this is a module.

@description('Object (principal) id of the identity that gets the role.')
param principalId string

@description('Id (GUID) of the built-in role definition, e.g. acdd72a7-3385-48ef-bd42-f606fba81ae7 for Reader.')
param roleId string

var roleDefinitionResourceId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionResourceId)
  properties: {
    roleDefinitionId: roleDefinitionResourceId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
