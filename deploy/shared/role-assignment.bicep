// One Azure role assignment on a container registry of this resource group. A module, not an inline
// resource, for one reason: its name must derive from the principal id (Learn: "Create Azure RBAC
// resources by using Bicep": guid(scope, principalId, roleDefinitionId)), and the principal id of an
// identity made in the same deployment is known only once that identity exists. A module parameter
// is known when the module starts, so the name can use it; a new principal (a recreated identity)
// then gets a new assignment instead of failing with RoleAssignmentUpdateNotPermitted on the old name.
// group-role-assignment.bicep is the same on the resource group.

@description('Name of the container registry (in this resource group) the role applies to.')
param registryName string

@description('Object (principal) id of the identity that gets the role.')
param principalId string

@description('Id (GUID) of the built-in role definition, e.g. 7f951dda-4ed3-4680-a7ca-43fe172d538d for AcrPull.')
param roleId string

var roleDefinitionResourceId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {
  name: registryName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, roleDefinitionResourceId)
  scope: registry
  properties: {
    roleDefinitionId: roleDefinitionResourceId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
