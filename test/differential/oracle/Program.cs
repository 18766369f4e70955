// The differential oracle: Microsoft's own token validation, set up the way Microsoft.Identity.Web 4.18
// sets up a web api (AddMicrosoftIdentityWebApi + MicrosoftIdentityJwtBearerOptionsPostConfigurator +
// ASP.NET Core's JwtBearerHandler), without ASP.NET Core: JwtBearerHandler hands the token and these
// TokenValidationParameters (ConfigurationManager included) to JsonWebTokenHandler.ValidateTokenAsync,
// which is what this program calls.
//
// Usage: msi-pair-oracle '<config json>'   then one token per line on stdin, one JSON line per token
// on stdout: {"accept":bool,"status":200|401|403,"reason":"IDX10223"|"IDW10201"|...,"type":"..."}.
// Config: {"authorityHost":"http://127.0.0.1:1234","tenantId":"<guid>","clientId":"<guid>",
//          "appIdUri":"api://...","requiredRoles":["DoAll"],"now":1700000000 (optional, unix seconds),
//          "signingKeysAppId":"<guid>" (optional: the metadata address gets ?appid=, as Microsoft Learn tells an
//          app with its own signing key to set MetadataAddress)}
// tenantId "common" (or "organizations") is how Microsoft.Identity.Web sets up a multi-tenant web api.
// A line "#refresh" asks the configuration manager to refresh (as JwtBearer's RefreshOnIssuerKeyNotFound does).

using System.Reflection;
using System.Security.Claims;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using Microsoft.IdentityModel.Validators;

var config = JsonDocument.Parse(args.Length > 0 ? args[0] : throw new ArgumentException("usage: msi-pair-oracle '<config json>'")).RootElement;
string authorityHost = config.GetProperty("authorityHost").GetString()!.TrimEnd('/');
string tenantId = config.GetProperty("tenantId").GetString()!;
string clientId = config.GetProperty("clientId").GetString()!;
string? appIdUri = config.TryGetProperty("appIdUri", out var a) ? a.GetString() : null;
string? signingKeysAppId = config.TryGetProperty("signingKeysAppId", out var k) ? k.GetString() : null;
string[] requiredRoles = config.TryGetProperty("requiredRoles", out var r) ? r.EnumerateArray().Select(e => e.GetString()!).ToArray() : ["DoAll"];

// Microsoft.Identity.Web: Authority = Instance + TenantId, then AuthorityHelpers.EnsureAuthorityIsV2.
string authority = $"{authorityHost}/{tenantId}/v2.0";
var httpClient = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

// The retriever of JwtBearerOptions (RequireHttpsMetadata) and of the AadIssuerValidator's own managers,
// with https required only off loopback: the local authority listens on http://127.0.0.1.
ConfigurationManager<OpenIdConnectConfiguration> Manager(string metadataAddress) => new(
    metadataAddress,
    new OpenIdConnectConfigurationRetriever(),
    new HttpDocumentRetriever(httpClient) { RequireHttps = !new Uri(metadataAddress).IsLoopback });

// JwtBearerPostConfigureOptions: MetadataAddress = Authority + "/.well-known/openid-configuration".
// An app with its own signing key (claims mapping) sets MetadataAddress to the document read with
// ?appid=<its client id> (Microsoft Learn, access-tokens, "Validate the signature").
var configurationManager = Manager($"{authority}/.well-known/openid-configuration{(signingKeysAppId is null ? "" : $"?appid={Uri.EscapeDataString(signingKeysAppId)}")}");

// MicrosoftIdentityIssuerValidatorFactory.GetAadIssuerValidator(options.Authority) calls
// AadIssuerValidator.GetAadIssuerValidator(authority, httpClient); its managers (v1, v1.1, v2 discovery
// derived from the authority) require https. The internal overload with a configurationManagerProvider is
// the same validator with our loopback-friendly retriever; it is reached by reflection.
var getValidator = typeof(AadIssuerValidator).GetMethod("GetAadIssuerValidator", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static, [typeof(string), typeof(HttpClient), typeof(Func<string, BaseConfigurationManager>)])
    ?? throw new MissingMethodException("AadIssuerValidator.GetAadIssuerValidator(string, HttpClient, Func<string, BaseConfigurationManager>); found: "
        + string.Join("; ", typeof(AadIssuerValidator).GetMethods(BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance).Select(m => m.ToString()))
        + " ctors: " + string.Join("; ", typeof(AadIssuerValidator).GetConstructors(BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance).Select(m => m.ToString())));
var issuerManagers = new Dictionary<string, BaseConfigurationManager>();
Func<string, BaseConfigurationManager> provider = aadAuthority =>
{
    lock (issuerManagers)
    {
        if (!issuerManagers.TryGetValue(aadAuthority, out var manager))
        {
            // AadIssuerValidator.CreateConfigManager: LastKnownGoodLifetime 24 h.
            manager = Manager($"{aadAuthority.TrimEnd('/')}/.well-known/openid-configuration");
            manager.LastKnownGoodLifetime = TimeSpan.FromHours(24);
            issuerManagers[aadAuthority] = manager;
        }
        return manager;
    }
};
var issuerValidator = (AadIssuerValidator)getValidator.Invoke(null, [authority, httpClient, provider])!;

var parameters = new TokenValidationParameters
{
    // ValidAudiences configured (client id and App ID URI), so RegisterValidAudience is not used.
    ValidAudiences = appIdUri is null ? [clientId] : [clientId, appIdUri],
    ValidateAudience = true,
    ValidateIssuer = true,
    ValidateLifetime = true,
    ClockSkew = TimeSpan.FromMinutes(5),
    IssuerValidator = issuerValidator.Validate,
    ConfigurationManager = configurationManager,
};
// MicrosoftIdentityWebApiAuthenticationBuilderExtensions: always on for web apis.
parameters.EnableAadSigningKeyIssuerValidation();
// A fixed clock, if asked for: TokenValidationParameters.TimeProvider is internal in 8.23 (read by the
// lifetime checks) and Clone() does not copy it, so it is set on every clone.
Action<TokenValidationParameters> setClock = _ => { };
if (config.TryGetProperty("now", out var now) && now.ValueKind == JsonValueKind.Number)
{
    var timeProvider = typeof(TokenValidationParameters).GetProperty("TimeProvider", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)
        ?? throw new MissingMemberException("TokenValidationParameters.TimeProvider");
    var clock = new FixedTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds((long)(now.GetDouble() * 1000)));
    setClock = p => timeProvider.SetValue(p, clock);
}

// JwtBearerOptions.MapInboundClaims defaults to true and is handed to its JsonWebTokenHandler.
var handler = new JsonWebTokenHandler { MapInboundClaims = true };
var idxCode = new Regex(@"ID[XW]\d{5}", RegexOptions.Compiled);

// Fetch the metadata once before answering, so the first token is not the one that waits for it.
await configurationManager.GetConfigurationAsync(CancellationToken.None);

using var stdin = new StreamReader(Console.OpenStandardInput(), new System.Text.UTF8Encoding(false), false, 1 << 16);
using var stdout = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 1 << 16) { AutoFlush = false };
string? line;
while ((line = await stdin.ReadLineAsync()) is not null)
{
    if (line == "#refresh")
    {
        configurationManager.RequestRefresh();
        await stdout.WriteLineAsync("{\"refreshed\":true}");
        await stdout.FlushAsync();
        continue;
    }
    await stdout.WriteLineAsync(JsonSerializer.Serialize(await Decide(line)));
    // Per answer: StreamReader.Peek would block on a pipe, so there is no asking whether more input waits.
    await stdout.FlushAsync();
}
await stdout.FlushAsync();

async Task<Dictionary<string, object?>> Decide(string token)
{
    TokenValidationResult result;
    try
    {
        // JwtBearerHandler clones the parameters per request (SetupTokenValidationParametersAsync); the
        // handler sets RefreshBeforeValidation and ValidateWithLKG on them while retrying, which must not
        // leak into the next token.
        var perRequest = parameters.Clone();
        setClock(perRequest);
        result = await handler.ValidateTokenAsync(token, perRequest);
    }
    catch (Exception ex)
    {
        return Answer(false, 401, ex);
    }
    if (!result.IsValid) return Answer(false, 401, result.Exception);

    var claims = result.ClaimsIdentity.Claims.ToList();
    // Microsoft.Identity.Web ChainOnTokenValidatedEventForClaimsValidation (AllowWebApiToBeAuthorizedByACL false):
    // a token with neither scp/scope nor roles/role claims fails authentication.
    if (!claims.Any(c => c.Type is "scp" or "http://schemas.microsoft.com/identity/claims/scope" or "roles" or ClaimTypes.Role))
    {
        return new() { ["accept"] = false, ["status"] = 401, ["reason"] = "IDW10201", ["type"] = "AuthenticationFailure" };
    }
    // Microsoft.Identity.Web RolesRequiredHttpContextExtensions.ValidateAppRole(requiredRoles): 403 unless a
    // roles (or role) claim, split on spaces, holds one of them (ordinal).
    var roles = claims.Where(c => c.Type is "roles" or ClaimTypes.Role).SelectMany(c => c.Value.Split(' '));
    if (!roles.Intersect(requiredRoles, StringComparer.Ordinal).Any())
    {
        return new() { ["accept"] = false, ["status"] = 403, ["reason"] = "IDW10202", ["type"] = "UnauthorizedAccessException" };
    }
    return new() { ["accept"] = true, ["status"] = 200 };
}

Dictionary<string, object?> Answer(bool accept, int status, Exception? ex)
{
    // The IDX code of the outermost exception that carries one (IDX40001 wraps the metadata failure).
    string? reason = null;
    for (var e = ex; e is not null && reason is null; e = e.InnerException)
    {
        var m = idxCode.Match(e.Message);
        if (m.Success) reason = m.Value;
    }
    return new()
    {
        ["accept"] = accept,
        ["status"] = status,
        ["reason"] = reason,
        ["type"] = ex?.GetType().Name,
        ["inner"] = ex?.InnerException?.GetType().Name,
        ["detail"] = Innermost(ex)?.Message is { } text ? text[..Math.Min(text.Length, 400)] : null,
    };
}

static Exception? Innermost(Exception? ex)
{
    while (ex?.InnerException is not null) ex = ex.InnerException;
    return ex;
}

sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
