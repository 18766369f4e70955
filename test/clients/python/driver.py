"""One Python azure-identity credential against mock-imds, in a process of its own.

Run by test/clients/python.test.ts with /usr/bin/python3 (Debian's python3-azure is importable
there only). The parent chooses the endpoint through the SDK's own environment variables
(AZURE_POD_IDENTITY_AUTHORITY_HOST, IDENTITY_ENDPOINT + IDENTITY_HEADER, HTTP_PROXY) and the
scenario through CLIENT_* variables (the same contract as test/clients/dotnet/Program.cs):

  CLIENT_CREDENTIAL   mi (ManagedIdentityCredential) | dac (DefaultAzureCredential)
  CLIENT_RESOURCE     the resource; the scope is this plus "/.default"
  CLIENT_CALLS        get_token calls on the one credential (default 1)
  CLIENT_CLIENT_ID    a user-assigned identity's client id (optional)
  CLIENT_MAX_RETRIES, CLIENT_RETRY_DELAY_MS   azure-core retry_total / retry_backoff_factor (optional)

Prints one JSON line per call and asserts nothing: every judgement is the parent's.
"""
import json
import os
import sys
import time

import azure.identity
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential


def env(name):
    value = os.environ.get(name)
    return value if value else None


def main():
    kind = env("CLIENT_CREDENTIAL") or "mi"
    resource = env("CLIENT_RESOURCE")
    if resource is None:
        raise SystemExit("CLIENT_RESOURCE is required")
    calls = int(env("CLIENT_CALLS") or "1")
    client_id = env("CLIENT_CLIENT_ID")
    options = {}
    if env("CLIENT_MAX_RETRIES") is not None:
        options["retry_total"] = int(env("CLIENT_MAX_RETRIES"))
        # retry_status bounds status retries separately; the IMDS credential sets it to 5.
        options["retry_status"] = int(env("CLIENT_MAX_RETRIES"))
    if env("CLIENT_RETRY_DELAY_MS") is not None:
        # azure-core waits backoff_factor * 2 ** (retry - 1) seconds (the first retry at once).
        options["retry_backoff_factor"] = int(env("CLIENT_RETRY_DELAY_MS")) / 1000

    if kind == "mi":
        credential = ManagedIdentityCredential(client_id=client_id, **options)
    else:
        # Only the credentials a deployed service has: no developer tool on this machine may
        # answer in the mock's place.
        credential = DefaultAzureCredential(
            managed_identity_client_id=client_id,
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_interactive_browser_credential=True,
            **options,
        )

    for _ in range(calls):
        started = time.monotonic()
        try:
            token = credential.get_token(resource + "/.default")
            outcome = {"ok": True, "token": token.token, "expiresOn": token.expires_on * 1000}
        except Exception as error:  # every failure is a measured outcome, reported to the parent
            cause = error.__cause__ or error.__context__
            outcome = {
                "ok": False,
                "errorName": type(error).__name__,
                "errorMessage": str(error),
                "causeName": type(cause).__name__ if cause else None,
                "causeMessage": str(cause) if cause else None,
            }
        outcome["elapsedMs"] = round((time.monotonic() - started) * 1000)
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--version":
        print(azure.identity.__version__)
    else:
        main()
