// One msi-pair service as a container app: the service container with liveness and readiness
// probes, an HTTP scale rule, images pulled from ACR with a user-assigned identity, and (optionally)
// the Prometheus agent sidecar that forwards this replica's /metrics to managed Prometheus.

@description('Azure region.')
param location string

@description('Container app name; other apps in the environment reach it as http://<name>.')
param name string

@description('Resource id of the Container Apps environment.')
param environmentId string

@description('Full image reference of the service, e.g. myacr.azurecr.io/msi-pair-api:v1.')
param image string

@description('Prometheus job name of the service (api or caller), as in the compose stack and rules.yml.')
param jobName string

@description('Port the service listens on; also its /healthz, /readyz and /metrics port.')
param port int

@description('Environment of the service container (name/value pairs, no secrets).')
param env array

@description('Resource id of the user-assigned identity that pulls images and publishes metrics.')
param platformIdentityId string

@description('Client id of that identity (the sidecar remote-writes with it).')
param platformIdentityClientId string

@description('More user-assigned identities of the app (the caller\'s own, which it gets its api token with; the container selects it with AZURE_CLIENT_ID).')
param additionalIdentityIds array = []

@description('Ingress reachable from outside the environment. False keeps the app internal.')
param externalIngress bool = false

@description('With external ingress: the only source CIDR allowed in (e.g. your IP/32).')
param allowedSourceCidr string = ''

@description('Minimum replicas. At least 2 on a zone-redundant environment (one replica lives in one zone); 1+ avoids cold starts of the token and JWKS caches.')
@minValue(0)
param minReplicas int

@description('Maximum replicas.')
@minValue(1)
param maxReplicas int

@description('Concurrent HTTP requests per replica before another replica is added.')
param concurrentRequestsPerReplica int

@description('Image of the Prometheus agent sidecar (in the same ACR); empty to run without it.')
param metricsAgentImage string = ''

@description('Remote-write URL of managed Prometheus (data collection endpoint + rule).')
param remoteWriteUrl string = ''

var sidecarConfig = replace(
  replace(
    replace(
      replace(loadTextContent('../prometheus-agent.yml'), 'localhost:3000', 'localhost:${port}'),
      'job_name: caller',
      'job_name: ${jobName}'
    ),
    'https://remote-write.invalid/dataCollectionRules/dcr-immutable-id/streams/Microsoft-PrometheusMetrics/api/v1/write?api-version=2023-04-24',
    remoteWriteUrl
  ),
  '00000000-0000-0000-0000-000000000000',
  platformIdentityClientId
)

var serviceContainer = {
  name: name
  image: image
  env: env
  resources: { cpu: json('0.25'), memory: '0.5Gi' }
  probes: [
    {
      type: 'Liveness'
      httpGet: { path: '/healthz', port: port }
      periodSeconds: 10
      failureThreshold: 3
    }
    {
      type: 'Readiness'
      httpGet: { path: '/readyz', port: port }
      periodSeconds: 5
      failureThreshold: 3
    }
    {
      // Gives the first start (JWKS fetch, token warm-up) up to 60 s before liveness applies.
      type: 'Startup'
      httpGet: { path: '/healthz', port: port }
      periodSeconds: 2
      failureThreshold: 30
    }
  ]
}

var agentContainer = {
  name: 'metrics-agent'
  image: metricsAgentImage
  // The config arrives as an environment variable (it holds no secret) and is written to the
  // container's writable /tmp before Prometheus starts; no storage mount is needed.
  command: [
    '/bin/sh'
    '-c'
    'printf "%s" "$PROMETHEUS_CONFIG" > /tmp/prometheus.yml && exec /bin/prometheus --config.file=/tmp/prometheus.yml --enable-feature=agent,expand-external-labels --storage.agent.path=/tmp/agent --web.listen-address=127.0.0.1:9090'
  ]
  env: [{ name: 'PROMETHEUS_CONFIG', value: sidecarConfig }]
  resources: { cpu: json('0.25'), memory: '0.5Gi' }
}

resource app 'Microsoft.App/containerApps@2026-07-01' = {
  name: name
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: toObject(concat([platformIdentityId], additionalIdentityIds), (id) => id, (_) => {})
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: externalIngress
        targetPort: port
        transport: 'http'
        allowInsecure: false // HTTPS even inside the environment (https://<app>.internal.<domain>)
        ipSecurityRestrictions: externalIngress && !empty(allowedSourceCidr)
          ? [{ name: 'allowed-source', action: 'Allow', ipAddressRange: allowedSourceCidr }]
          : null
      }
      // Pulled with the identity: no registry password, no admin user.
      registries: [
        {
          server: split(image, '/')[0]
          identity: platformIdentityId
        }
      ]
    }
    template: {
      containers: empty(metricsAgentImage) ? [serviceContainer] : [serviceContainer, agentContainer]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http'
            http: { metadata: { concurrentRequests: string(concurrentRequestsPerReplica) } }
          }
        ]
      }
    }
  }
}

output fqdn string = app.properties.configuration.ingress.fqdn
