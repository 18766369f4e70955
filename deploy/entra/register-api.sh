#!/usr/bin/env bash
# Creates (or brings up to date) the Entra objects msi-pair needs, through Microsoft Graph v1.0
# with `az rest` (your `az login` session; no secret is created or stored):
#   1. the api's app registration: identifier URI api://..., app role DoAll for applications
#      (allowedMemberTypes Application), requestedAccessTokenVersion 2;
#   2. its service principal, with appRoleAssignmentRequired true (tokens are only issued to
#      principals that hold a role: a missing assignment fails early with AADSTS501051);
#   3. with --caller-principal-id: the app role assignment of DoAll to the caller's managed identity.
#
# Idempotent: it reads first and writes only what differs, so a second run sends only GETs. An
# assignment answered with "already exists" (Graph replication lag between our read and write)
# counts as success. --dry-run sends the reads and prints every request, writes included, without
# sending any write.
#
# Prints API_CLIENT_ID=..., API_IDENTIFIER_URI=..., API_SP_ID=..., APP_ROLE_ID=... on stdout.
# Needs: az (logged in as someone allowed to create applications and assign app roles, e.g.
# Application Administrator or Cloud Application Administrator) and jq.
set -euo pipefail

graph="${GRAPH_URL:-https://graph.microsoft.com/v1.0}"
unique_name="msi-pair-api"
display_name="msi-pair api"
identifier_uri="api://msi-pair-api"
role_value="DoAll"
caller_principal_id=""
dry_run=false
# Fresh managed identities and apps take a while to replicate in Entra; writes that reference them
# are retried on "does not exist"-style answers.
retries="${MSI_PAIR_GRAPH_RETRIES:-6}"
retry_seconds="${MSI_PAIR_GRAPH_RETRY_SECONDS:-10}"

usage() {
  cat <<USAGE
usage: $0 [--caller-principal-id GUID] [--unique-name NAME] [--display-name TEXT]
          [--identifier-uri URI] [--role VALUE] [--dry-run]
  --caller-principal-id  object id of the caller's managed identity (deployment output
                         callerPrincipalId); without it, only the app and its service principal
  --unique-name          key the app registration is found and upserted by (default $unique_name)
  --identifier-uri       Application ID URI (default $identifier_uri)
  --role                 app role value (default $role_value)
  --dry-run              send only reads; print every request, with bodies, instead of writing
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --caller-principal-id) caller_principal_id="${2:?}"; shift 2 ;;
    --unique-name) unique_name="${2:?}"; shift 2 ;;
    --display-name) display_name="${2:?}"; shift 2 ;;
    --identifier-uri) identifier_uri="${2:?}"; shift 2 ;;
    --role) role_value="${2:?}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

guid_re='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
if [ -n "$caller_principal_id" ] && ! [[ "$caller_principal_id" =~ $guid_re ]]; then
  echo "--caller-principal-id must be a GUID, got: $caller_principal_id" >&2
  exit 2
fi
if ! [[ "$unique_name" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "--unique-name may only contain letters, digits, '.', '_' and '-'" >&2
  exit 2
fi
for tool in az jq; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

log() { printf '%s\n' "$*" >&2; }
# --dry-run prints requests on fd 3 (the original stdout), so that they are shown even from inside
# $(...) captures.
exec 3>&1
errfile="$(mktemp)"
trap 'rm -f "$errfile"' EXIT

# print_request METHOD URL [BODY [HEADER=VALUE...]]: the request, as --dry-run shows it.
print_request() {
  local header
  printf '%s %s\n' "$1" "$2" >&3
  for header in "${@:4}"; do printf '%s: %s\n' "${header%%=*}" "${header#*=}" >&3; done
  if [ -n "${3:-}" ]; then jq . <<<"$3" >&3; fi
}

# read_graph URL: GET, also in --dry-run (reads change nothing). Prints the JSON answer.
read_graph() {
  if $dry_run; then print_request GET "$1"; fi
  az rest --method GET --url "$1" --only-show-errors
}

# read_graph_optional URL: like read_graph, but an absent object (Graph 404) prints nothing and succeeds.
read_graph_optional() {
  local out
  if $dry_run; then print_request GET "$1"; fi
  if out="$(az rest --method GET --url "$1" --only-show-errors 2>"$errfile")"; then
    printf '%s' "$out"
    return 0
  fi
  if grep -q 'Request_ResourceNotFound' "$errfile"; then
    return 0
  fi
  cat "$errfile" >&2
  return 1
}

# write_graph METHOD URL BODY [HEADER...]: a write, retried while Entra has not yet replicated a
# referenced object. Prints Graph's answer (may be empty). Returns 3 on "already exists".
write_graph() {
  local method="$1" url="$2" body="$3" attempt=1 out
  shift 3
  if $dry_run; then
    print_request "$method" "$url" "$body" "$@"
    return 0
  fi
  log "$method $url"
  while true; do
    if out="$(az rest --method "$method" --url "$url" --body "$body" --only-show-errors \
      --headers Content-Type=application/json "$@" 2>"$errfile")"; then
      printf '%s' "$out"
      return 0
    fi
    if grep -qi 'already exists' "$errfile"; then
      return 3
    fi
    if [ "$attempt" -lt "$retries" ] &&
      grep -qiE 'does not exist|ResourceNotFound|does not reference a valid application|Not a valid reference' "$errfile"; then
      log "  not replicated yet, retrying in ${retry_seconds}s ($attempt/$retries)"
      sleep "$retry_seconds"
      attempt=$((attempt + 1))
      continue
    fi
    cat "$errfile" >&2
    return 1
  done
}

new_guid() {
  if [ -r /proc/sys/kernel/random/uuid ]; then cat /proc/sys/kernel/random/uuid; else uuidgen | tr 'A-F' 'a-f'; fi
}

# --- 1. the api's app registration -------------------------------------------------------------
# Read by the alternate key, as Graph documents it (GET /applications(uniqueName='...')); uniqueName
# is not documented as filterable, so $filter=uniqueName eq ... may be refused or change meaning.
app="$(read_graph_optional "$graph/applications(uniqueName='$unique_name')?\$select=id,appId,uniqueName,identifierUris,appRoles,api")"
app="$(jq -c '. // empty' <<<"${app:-null}")"

# Keep the role's id once it exists: assignments reference it, and changing it would orphan them.
role_id="$(jq -r --arg v "$role_value" '(.appRoles // [])[] | select(.value == $v) | .id' <<<"${app:-null}")"
role_id="${role_id:-$(new_guid)}"
role="$(jq -nc --arg id "$role_id" --arg v "$role_value" '{
  id: $id, value: $v, isEnabled: true, allowedMemberTypes: ["Application"],
  displayName: $v, description: "Service-to-service callers of the msi-pair api (app-only tokens)."
}')"

if [ -z "$app" ]; then
  # Upsert by uniqueName: if another run created it in the meantime this updates instead of failing.
  body="$(jq -nc --arg name "$display_name" --arg uri "$identifier_uri" --argjson role "$role" '{
    displayName: $name, signInAudience: "AzureADMyOrg", identifierUris: [$uri],
    api: {requestedAccessTokenVersion: 2}, appRoles: [$role]
  }')"
  created="$(write_graph PATCH "$graph/applications(uniqueName='$unique_name')" "$body" Prefer=create-if-missing)"
  if $dry_run; then
    app_object_id="<object id of the new app>"
    app_id="<appId of the new app>"
  else
    if [ -z "$created" ]; then # 204: someone created it between our read and write
      created="$(read_graph "$graph/applications(uniqueName='$unique_name')?\$select=id,appId")"
    fi
    app_object_id="$(jq -r .id <<<"$created")"
    app_id="$(jq -r .appId <<<"$created")"
    log "created app registration $unique_name (appId $app_id)"
  fi
else
  app_object_id="$(jq -r .id <<<"$app")"
  app_id="$(jq -r .appId <<<"$app")"
  # Desired = current + what we need; other roles, URIs and api settings are left untouched.
  patch="$(jq -c --arg uri "$identifier_uri" --argjson role "$role" '
    (first((.appRoles // [])[] | select(.value == $role.value)) // null) as $current
    | ( if $current == null then {appRoles: ((.appRoles // []) + [$role])}
        elif $current.isEnabled != true or $current.allowedMemberTypes != ["Application"] then
          {appRoles: [.appRoles[] | if .value == $role.value
            then . + {isEnabled: true, allowedMemberTypes: ["Application"]} else . end]}
        else {} end )
    + ( if ((.identifierUris // []) | index($uri)) == null
        then {identifierUris: ((.identifierUris // []) + [$uri])} else {} end )
    + ( if (.api.requestedAccessTokenVersion // null) != 2
        then {api: ((.api // {}) + {requestedAccessTokenVersion: 2})} else {} end )' <<<"$app")"
  if [ "$patch" != "{}" ]; then
    write_graph PATCH "$graph/applications/$app_object_id" "$patch" >/dev/null
    log "updated app registration $unique_name: $(jq -c 'keys' <<<"$patch")"
  else
    log "app registration $unique_name is up to date (appId $app_id)"
  fi
fi

# --- 2. its service principal ------------------------------------------------------------------
if $dry_run && [ -z "$app" ]; then
  sps='{"value":[]}' # the app does not exist yet, so neither does its service principal
else
  sps="$(read_graph "$graph/servicePrincipals?\$filter=appId%20eq%20'$app_id'&\$select=id,appId,appRoleAssignmentRequired")"
fi
sp="$(jq -c '.value[0] // empty' <<<"$sps")"
if [ -z "$sp" ]; then
  body="$(jq -nc --arg appId "$app_id" '{appId: $appId, appRoleAssignmentRequired: true}')"
  rc=0
  created="$(write_graph POST "$graph/servicePrincipals" "$body")" || rc=$?
  if [ "$rc" -eq 3 ]; then
    created="$(read_graph "$graph/servicePrincipals?\$filter=appId%20eq%20'$app_id'&\$select=id" | jq -c '.value[0]')"
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
  if $dry_run; then sp_id="<object id of the new service principal>"; else
    sp_id="$(jq -r .id <<<"$created")"
    log "created service principal $sp_id"
  fi
else
  sp_id="$(jq -r .id <<<"$sp")"
  if [ "$(jq -r .appRoleAssignmentRequired <<<"$sp")" != "true" ]; then
    write_graph PATCH "$graph/servicePrincipals/$sp_id" '{"appRoleAssignmentRequired":true}' >/dev/null
    log "service principal $sp_id now requires an app role assignment"
  else
    log "service principal $sp_id is up to date"
  fi
fi

# --- 3. the caller's app role assignment -------------------------------------------------------
if [ -n "$caller_principal_id" ]; then
  existing=""
  if ! { $dry_run && [ -z "$sp" ]; }; then
    url="$graph/servicePrincipals/$sp_id/appRoleAssignedTo?\$select=id,principalId,appRoleId"
    while [ -n "$url" ]; do # follow paging: a popular api can have many assignees
      page="$(read_graph "$url")"
      existing+="$(jq -r --arg p "$caller_principal_id" --arg r "$role_id" \
        '.value[] | select(.principalId == $p and .appRoleId == $r) | .id' <<<"$page")"
      url="$(jq -r '."@odata.nextLink" // empty' <<<"$page")"
    done
  fi
  if [ -n "$existing" ]; then
    log "caller $caller_principal_id already holds $role_value"
  else
    body="$(jq -nc --arg p "$caller_principal_id" --arg r "$sp_id" --arg role "$role_id" \
      '{principalId: $p, resourceId: $r, appRoleId: $role}')"
    rc=0
    write_graph POST "$graph/servicePrincipals/$sp_id/appRoleAssignedTo" "$body" >/dev/null || rc=$?
    case "$rc" in
      0) $dry_run || log "assigned $role_value to caller $caller_principal_id" ;;
      3) log "caller $caller_principal_id already holds $role_value (Graph: already exists)" ;;
      *) exit "$rc" ;;
    esac
    $dry_run || log "note: managed identity tokens are cached for up to 24 h; a new role can take that long to show in 'roles'"
  fi
fi

printf 'API_CLIENT_ID=%s\nAPI_IDENTIFIER_URI=%s\nAPI_SP_ID=%s\nAPP_ROLE_ID=%s\n' \
  "$app_id" "$identifier_uri" "$sp_id" "$role_id"
# The app's object id is only needed for debugging; keep it on stderr.
log "app object id: $app_object_id"
