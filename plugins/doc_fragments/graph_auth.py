# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every Microsoft Graph module of this collection.
    DOCUMENTATION = r"""
options:
  auth_method:
    description:
      - How to sign in to Microsoft Graph.
      - V(auto) picks the first that is configured, in this order. O(access_token); a certificate
        (O(client_certificate_path)); a federated token (O(federated_token_file)); a client secret
        (O(client_secret)); a managed identity when E(IDENTITY_ENDPOINT) and E(IDENTITY_HEADER) are set.
      - Explicit task arguments and C(module_defaults) win over the environment variables each option names (E(AZURE_*)
        and E(ENTRA_*)). Where an option names several, the first that is set wins. An empty variable counts as unset
        (AWX sets every variable of a credential, empty when its field is).
      - V(managed_identity) uses the managed identity of the host (App Service style endpoint). With O(client_id),
        the user-assigned identity of that client id; without, the system-assigned one. The identity endpoint the host
        publishes (E(IDENTITY_ENDPOINT), E(MSI_ENDPOINT), Azure Arc's agent, the instance metadata service) is asked
        over HTTPS, or over plain HTTP only on this machine (loopback) or at C(169.254.169.254).
    type: str
    default: auto
    choices: [auto, access_token, certificate, federated, client_secret, managed_identity]
  tenant_id:
    description:
      - The directory (tenant) id (a GUID), or a verified domain name of the tenant, such as
        C(contoso.onmicrosoft.com). Anything else is refused before any request.
      - Falls back to E(AZURE_TENANT_ID), then E(AZURE_TENANT) (which AWX's built-in C(Microsoft Azure Resource
        Manager) credential sets).
    type: str
  client_id:
    description:
      - The application (client) id of the app registration; for O(auth_method=managed_identity), the client id of a
        user-assigned managed identity.
      - Falls back to E(AZURE_CLIENT_ID).
    type: str
  client_secret:
    description:
      - A client secret of the app registration.
      - One holding whitespace or control characters (a trailing newline from a file) is refused before any request.
      - Falls back to E(AZURE_CLIENT_SECRET), then E(AZURE_SECRET) (which AWX's built-in C(Microsoft Azure Resource
        Manager) credential sets).
    type: str
  client_certificate_path:
    description:
      - A file holding the app's certificate and its private key; the thumbprint is derived from it. Either a PEM
        file (the key and the certificate, in either order) or a PKCS#12 file (C(.pfx), C(.p12)), binary or as
        base64 text (as an AWX credential's field or an Azure Key Vault secret holds it). The format is told from
        the content, not from the file name.
      - Falls back to E(AZURE_CLIENT_CERTIFICATE_PATH).
    type: path
  client_certificate_password:
    description:
      - The password of the private key of a PEM O(client_certificate_path), if it is encrypted; or the password of
        a PKCS#12 file. A wrong or missing one fails the sign-in, saying so. It may hold spaces; one holding control
        characters (a trailing newline from a file) is refused before any request.
      - Falls back to E(AZURE_CLIENT_CERTIFICATE_PASSWORD).
    type: str
  federated_token_file:
    description:
      - A file holding a federated token (workload identity federation) from an external identity provider, such as
        a GitHub Actions or GitLab CI OIDC token, or a Kubernetes service account token. It is read again whenever a
        new access token is needed, so a rotated file is picked up.
      - The app registration needs a federated credential matching the token's issuer, subject and audience.
      - Falls back to E(AZURE_FEDERATED_TOKEN_FILE).
    type: path
  access_token:
    description:
      - An access token for Microsoft Graph obtained elsewhere (for example C(az account get-access-token
        --resource-type ms-graph)). No sign-in is made. It is not refreshed, so it must outlive the task.
      - One holding whitespace or control characters (a trailing newline from a file or a command's output) is refused
        before any request.
    type: str
  cloud:
    description:
      - The Microsoft cloud, which sets the sign-in authority and the Graph endpoint.
      - V(public) is login.microsoftonline.com and graph.microsoft.com; V(usgov) is login.microsoftonline.us and
        graph.microsoft.us; V(usgov_dod) is login.microsoftonline.us and dod-graph.microsoft.us; V(china) is
        login.chinacloudapi.cn and microsoftgraph.chinacloudapi.cn.
      - Microsoft documents the hardware OATH APIs for the global (V(public)) cloud only. With another cloud (or a
        O(graph_endpoint) of another cloud's Graph) the task fails before any request, unless
        O(allow_national_cloud=true).
      - Falls back to E(AZURE_CLOUD_ENVIRONMENT), the C(Azure Cloud Environment) of AWX's built-in C(Microsoft Azure
        Resource Manager) credential, by Azure's names. V(AzureCloud) is V(public), V(AzureUSGovernment) is V(usgov)
        (set O(cloud=usgov_dod) for a DoD tenant), V(AzureChinaCloud) is V(china), in any case. A value that is none
        of these nor one of the choices (an Azure Stack endpoint, V(AzureGermanCloud)) fails the task before any
        request, rather than sign in to the global cloud with another cloud's credential.
    type: str
    default: public
    choices: [public, usgov, usgov_dod, china]
  allow_national_cloud:
    description:
      - Run against a national cloud (O(cloud) other than V(public)) although Microsoft documents the hardware OATH
        APIs for the global service only; the task warns. Set it only once Microsoft offers the APIs in your cloud.
    type: bool
    default: false
  authority_host:
    description:
      - Overrides the sign-in authority of O(cloud), for example C(https://login.microsoftonline.com). A host name
        alone gets C(https://).
      - Must be an C(https://) URL of a host (and port), without a user name, path, query or fragment; plain HTTP is
        refused, also with O(validate_certs=false). Sign-in requests go to this host only.
      - Falls back to E(AZURE_AUTHORITY_HOST), then E(ENTRA_AUTHORITY_HOST); a value from the environment is
        checked the same way.
    type: str
  graph_endpoint:
    description:
      - Overrides the Microsoft Graph endpoint of O(cloud), for example C(https://graph.microsoft.com). Tokens are
        still requested for the Graph resource of O(cloud). A host name alone gets C(https://).
      - Must be an C(https://) URL of a host (and port), without a user name, path, query or fragment; plain HTTP is
        refused, also with O(validate_certs=false). The access token is sent to this host only, and a link in an
        answer (C(@odata.nextLink)) that points elsewhere (another host or port, or plain HTTP) fails the task
        without being followed.
      - Falls back to E(ENTRA_GRAPH_ENDPOINT); a value from the environment is checked the same way.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificates of Graph and the identity platform. Turning this off is insecure and warns; it
        never allows plain HTTP.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM bundle of CA certificates to trust instead of the system's, for Graph and for sign-in alike (for
        example behind a TLS-inspecting proxy).
      - Falls back to E(ENTRA_CA_PATH).
    type: path
  token_cache_path:
    description:
      - A file (created with mode 0600, in directories created with mode 0700) that keeps access tokens between tasks,
        so that a play of many tasks signs in once. Off by default. Not used with O(auth_method=managed_identity).
      - An existing file that other users can read or change (any group or other permission bit), or that belongs to
        another user, is refused before any request, and left as it is; delete it or C(chmod 600) it.
      - So is a file in a directory that other users can write (a group or other write bit, with the sticky bit of
        C(/tmp) or without), or that belongs to another user. Keep it in a directory of your own, such as
        C(~/.cache/tokenops/tokens.json).
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP response.
    type: float
    default: 30
  max_retries:
    description:
      - How many times a throttled (429) or unavailable (503, 504) request, or a failed connection, is retried.
        Requests that change something are retried only when Graph refused them unprocessed (429) or no
        connection was made.
      - A write whose outcome is unknown (its answer lost, or answered 503 or 504) is never retried blindly. The
        token is read again, and the write is sent again, with a fresh code, only if it did not take effect, up to
        six sends in all, whatever this option says.
      - A 429, or a failed connection, does not count while other requests of the task get answers (the task makes
        progress, as under a rate limit that lets some through); it is retried after its C(Retry-After) (or a
        backoff) for as long as that lasts.
    type: int
    default: 5
  max_retry_wait:
    description:
      - The longest wait before one retry, in seconds. Graph's C(Retry-After) is honoured up to this.
    type: float
    default: 60
  write_quota:
    description:
      - The writes per second this task sends at most, as C(WRITES/SECONDS), shared by every request of the task (all
        its threads). Graph's identity write quota is 3,000 writes per 150 seconds per application and tenant, the
        default. When Graph still answers C(429) for that quota (C(x-ms-throttle-information) C(WriteLimitExceeded);
        without that header, a C(x-ms-throttle-scope) of the C(ReadWrite) or C(Write) limit, except under users'
        authentication methods), every request of the task waits its C(Retry-After) and the write rate is lowered to
        what Graph allowed, then recovers slowly. When that C(429) asks for most of a window once the task sent
        WRITES within one (Graph counts the writes of the last SECONDS, or of fixed windows of SECONDS, rather than a
        bucket that refills continuously), the writes keep to at most WRITES in any SECONDS from then on.
      - The task keeps a quarter of a second of writes in hand (at most a tenth of WRITES), so that writes do not
        reach Graph a write too early.
      - A C(429) of another quota (another C(x-ms-throttle-scope) or C(x-ms-throttle-information), such as a limit on
        users' authentication methods) holds up only the requests of its kind (those under users' authentication
        methods, or the others), which are then sent at the rate Graph was seen to serve between two such answers. A
        C(429) without a scope holds up only the request that got it.
      - Lower it when other jobs write to the same tenant with the same application at the same time.
    type: str
    default: 3000/150
  read_after_write_wait:
    description:
      - Graph's directory is eventually consistent, so a read may not show a write of a moment ago. Where a step must
        see an earlier write (a token imported by the task before, the outcome of a write whose answer was lost, a
        rotation's deletion), it reads again, waiting 0.5, 1, 2, 4 ... seconds, for at most this many seconds in all.
      - A token that is not in the inventory costs this long before an assignment fails.
    type: float
    default: 10
  run_state_dir:
    description:
      - A directory of the controller where the modules that write tokens keep what runs share. The lock of a tenant
        and application, held by a run (not in check mode) from its first read to its last write, so that a second
        run on this controller waits for it instead of writing side by side with it. And the ledger of the codes sent,
        per token (its id and the code's time step, never the code), written before each code is sent, so that no
        run sends a code another run sent, even one killed before it knew Graph's answer.
      - It must be the user's own, and writable by nobody else; a missing one is created with mode 0700. Runs on other
        machines (AWX jobs in containers, CI runners) share none of it; see the reliability guide.
      - If not set, the environment variable E(ENTRA_RUN_STATE_DIR) is used; by default
        C($XDG_STATE_HOME/tokenops.entra), or C(~/.local/state/tokenops.entra).
    type: path
    version_added: 1.1.0
  lock_timeout:
    description:
      - How long, in seconds, a run that writes waits for another run of its tenant and application on this controller
        to finish (see O(run_state_dir)). The lock is released when its holder ends, however it ends. While it waits,
        the progress lines of M(tokenops.entra.hardware_oath_inventory) say so; once it has it, a warning says how long
        it waited. When the time is up, the task fails with nothing changed.
      - A run that waited for one that wrote then waits until O(read_after_write_wait) seconds have passed since that
        run ended, so that its reads show the other run's last writes (it would otherwise plan them again).
    type: float
    default: 900
    version_added: 1.1.0
requirements:
  - httpx
  - msal
  - pyotp
notes:
  - The hardware OATH APIs of Microsoft Graph are in beta; Microsoft does not support them for production use.
  - Secrets (client secrets, certificate passwords, access tokens, token secret keys, verification codes) are never
    returned or logged.
"""
