// One .NET Azure.Identity credential against mock-imds, in a process of its own: MSAL.NET keeps the
// managed identity source and its token cache in statics, as MSAL Node does.
//
// The parent test (test/clients/dotnet.test.ts) chooses the endpoint through the SDK's own
// environment variables (AZURE_POD_IDENTITY_AUTHORITY_HOST, IDENTITY_ENDPOINT + IDENTITY_HEADER,
// HTTP_PROXY) and the scenario through CLIENT_* variables. This prints one JSON line per getToken
// call and asserts nothing: every judgement is the parent's.
//
//   CLIENT_CREDENTIAL   mi (ManagedIdentityCredential) | dac (DefaultAzureCredential)
//   CLIENT_RESOURCE     the resource; the scope is this plus "/.default"
//   CLIENT_CALLS        GetTokenAsync calls on the one credential (default 1)
//   CLIENT_CLIENT_ID    a user-assigned identity's client id (optional)
//   CLIENT_MAX_RETRIES, CLIENT_RETRY_DELAY_MS   Azure.Core retry options (optional; the SDK's defaults otherwise)
using System.Diagnostics;
using System.Text.Json;
using Azure.Core;
using Azure.Identity;

static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

var kind = Env("CLIENT_CREDENTIAL") ?? "mi";
var resource = Env("CLIENT_RESOURCE") ?? throw new ArgumentException("CLIENT_RESOURCE is required");
var calls = int.Parse(Env("CLIENT_CALLS") ?? "1");
var clientId = Env("CLIENT_CLIENT_ID");
var maxRetries = Env("CLIENT_MAX_RETRIES");
var retryDelayMs = Env("CLIENT_RETRY_DELAY_MS");

void ConfigureRetry(RetryOptions retry)
{
    if (maxRetries is not null) retry.MaxRetries = int.Parse(maxRetries);
    if (retryDelayMs is not null) retry.Delay = TimeSpan.FromMilliseconds(int.Parse(retryDelayMs));
}

TokenCredential credential;
if (kind == "mi")
{
    var options = new ManagedIdentityCredentialOptions(
        clientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId));
    ConfigureRetry(options.Retry);
    credential = new ManagedIdentityCredential(options);
}
else
{
    var options = new DefaultAzureCredentialOptions();
    if (clientId is not null) options.ManagedIdentityClientId = clientId;
    ConfigureRetry(options.Retry);
    credential = new DefaultAzureCredential(options);
}

var context = new TokenRequestContext(new[] { $"{resource}/.default" });
for (var i = 0; i < calls; i++)
{
    var watch = Stopwatch.StartNew();
    object outcome;
    try
    {
        var token = await credential.GetTokenAsync(context, CancellationToken.None);
        outcome = new
        {
            ok = true,
            token = token.Token,
            expiresOn = token.ExpiresOn.ToUnixTimeMilliseconds(),
            refreshOn = token.RefreshOn?.ToUnixTimeMilliseconds(),
            elapsedMs = watch.ElapsedMilliseconds
        };
    }
    catch (Exception error)
    {
        outcome = new
        {
            ok = false,
            errorName = error.GetType().Name,
            errorMessage = error.Message,
            causeName = error.InnerException?.GetType().Name,
            causeMessage = error.InnerException?.Message,
            elapsedMs = watch.ElapsedMilliseconds
        };
    }
    Console.WriteLine(JsonSerializer.Serialize(outcome));
}
