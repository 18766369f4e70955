// One Azure role assignment, on a container registry of this resource group or on the resource group
// itself. A module, not an inline resource, for one reason: its name must derive from the principal
// id (Learn: "Create Azure RBAC resources by using Bicep": guid(scope, principalId, roleDefinitionId)),
// and the principal id of an identity made in the same deployment is known only once that identity
// exists. A module parameter is known when the module starts, so the name can use it; a new principal
// (a recreated identity) then gets a new assignment instead of failing with
// RoleAssignmentUpdateNotPermitted on the old name.

@description('Object (principal) id of the identity that gets the role.')
param principalId string

@description('Id (GUID) of the built-in role definition, e.g. 7f951dda-4ed3-4680-a7ca-43fe172d538d for AcrPull.')
param roleId string

@description('Name of a container registry in this resource group to scope the assignment to; empty for the resource group itself.')
param registryName string = ''

var roleDefinitionResourceId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = if (!empty(registryName)) {
  name: registryName
}

resource onRegistry 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(registryName)) {
  name: guid(registry.id, principalId, roleDefinitionResourceId)
  scope: registry
  properties: {
    roleDefinitionId: roleDefinitionResourceId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource onGroup 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (empty(registryName)) {
  name: guid(resourceGroup().id, principalId, roleDefinitionResourceId)
  properties: {
    roleDefinitionId: roleDefinitionResourceId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
