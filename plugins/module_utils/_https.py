# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Mutual-TLS HTTP calls from a master to its own kube-apiserver and etcd, with the cluster's certificates.

PRIVATE to the collection. Runs on masters: standard library (and PyYAML to read a kubeconfig) only.

Credentials for the apiserver, in this order: an explicit client certificate or token; the kubeconfig on the
master (kubeadm's /etc/kubernetes/admin.conf, embedded certificates or a token); the apiserver's own kubelet
client certificate from its manifest (kubeadm puts it in system:masters, or kubeadm:cluster-admins from 1.29).
Which server to call is the caller's choice (_master_api: host, a kubeconfig's server, or this master's own).

Each thread that calls an Endpoint keeps one HTTP/1.1 connection to it alive (a TLS handshake with a client
certificate costs more than a small API call), so a pool of worker threads gets one connection per worker.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import tempfile
import threading
import typing as t
from urllib.parse import urlsplit

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import syntax_error_message

try:
    import yaml
except ImportError:  # reported by the module when a kubeconfig has to be read
    yaml = None  # type: ignore[assignment]


class HttpsError(TkeKmsError):
    """The endpoint could not be reached or credentials could not be found."""


class Answer(t.NamedTuple):
    """An HTTP answer: status, body and headers (case-insensitive get)."""

    status: int
    body: bytes
    headers: t.Mapping[str, str]


# What a kept-alive connection the server has closed meanwhile (idle timeout, restart) looks like.
_DROPPED = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
)


class Endpoint:
    """Where to connect and how to authenticate. Safe to share between threads: each thread gets its own
    kept-alive connection. close() closes them all and removes temporary files of embedded PEM data."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: t.Optional[str] = None,
        cert_file: t.Optional[str] = None,
        key_file: t.Optional[str] = None,
        token: t.Optional[str] = None,
        timeout: float = 10,
        verify: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise HttpsError("%r is not an https:// (or http://) URL" % url)
        self.secure = parts.scheme == "https"
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.token = token
        self.timeout = timeout
        self.verify = verify
        self._tmpdir: t.Optional[str] = None
        self._context: t.Optional[ssl.SSLContext] = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: t.List[http.client.HTTPConnection] = []

    def materialize(self, name: str, pem: bytes) -> str:
        """Write embedded PEM data to a private temporary file (ssl needs files for client certificates)."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="tke-kms-tls-")
        path = os.path.join(self._tmpdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return path

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()

    def context(self) -> ssl.SSLContext:
        """The TLS context all of this endpoint's connections share (loaded once)."""
        with self._lock:
            if self._context is not None:
                return self._context
            for what, path in (
                ("CA", self.ca_file),
                ("client certificate", self.cert_file),
                ("key", self.key_file),
            ):
                if path and not os.path.isfile(path):
                    raise HttpsError("the %s file %s does not exist" % (what, path))
            try:
                context = ssl.create_default_context(cafile=self.ca_file)
                if self.cert_file:
                    context.load_cert_chain(self.cert_file, self.key_file)
                if not self.verify:  # validate_certs=false, or the kubeconfig's insecure-skip-tls-verify
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            except (ssl.SSLError, OSError) as exc:
                raise HttpsError("cannot load the TLS files for %s: %s" % (self.url, exc)) from exc
            self._context = context
            return context

    def request(
        self,
        method: str,
        path: str,
        body: t.Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Answer:
        """The HTTP answer, whatever its status; HttpsError when the endpoint cannot be reached at all."""
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        connection = self._connection()
        may_retry = True
        while True:
            reused = connection.sock is not None
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                return Answer(response.status, response.read(), response.headers)
            except _DROPPED as exc:
                connection.close()
                if reused and may_retry:
                    may_retry = False  # the server closed the kept-alive connection: once more on a new one
                    continue
                raise HttpsError("%s %s%s: %s" % (method, self.url, path, exc)) from exc
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # a timeout or a broken answer: the next call starts afresh
                raise HttpsError("%s %s%s: %s" % (method, self.url, path, exc)) from exc

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection; http.client (re)connects it on the next request when it is closed."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.secure:
                connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.context()
                )
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def json(
        self,
        method: str,
        path: str,
        body: t.Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> t.Any:
        """The decoded JSON answer of a 2xx call; HttpsError with the status and message otherwise."""
        status, raw, headers = self.request(method, path, body, content_type, accept)
        if not 200 <= status < 300:
            answer = _decoded(raw)
            raise StatusError(
                status,
                "%s %s%s: HTTP %d %s" % (method, self.url, path, status, _message(raw, answer)),
                answer if isinstance(answer, dict) else {},
                headers,
            )
        return json.loads(raw.decode("utf-8")) if raw else None


class StatusError(HttpsError):
    """An HTTP answer other than 2xx; `answer` is its decoded JSON object (a Kubernetes Status), or {}, and
    `headers` its HTTP headers (Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        answer: t.Optional[t.Dict[str, t.Any]] = None,
        headers: t.Optional[t.Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer or {}
        self.headers = headers or {}

    def details(self) -> t.Dict[str, t.Any]:
        return dict(status=self.status)


def _decoded(raw: bytes) -> t.Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None


def _message(raw: bytes, decoded: t.Any) -> str:
    if decoded is None:
        return raw.decode("utf-8", "replace").strip()[:300]
    if isinstance(decoded, dict):
        return str(decoded.get("message") or decoded.get("error") or decoded)[:300]
    return str(decoded)[:300]


# A file of a kubeconfig: its path, or the bytes of its *-data field.
FileOrData = t.Union[str, bytes, None]


class Kubeconfig(t.NamedTuple):
    """What one context of a kubeconfig says: the server, the CA, and the user's credentials."""

    path: str
    server: t.Optional[str]
    ca: FileOrData
    cert: FileOrData
    key: FileOrData
    token: t.Optional[str]
    insecure: bool


def _kubeconfig_entry(config: t.Dict[str, t.Any], kind: str, name: t.Optional[str]) -> t.Dict[str, t.Any]:
    for item in config.get(kind + "s") or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(kind) or {}
    return {}


def read_kubeconfig(path: str, context: t.Optional[str] = None) -> Kubeconfig:
    """The context (default: the current one) of the kubeconfig at path; HttpsError when it cannot be read."""
    if yaml is None:
        raise HttpsError("PyYAML is needed to read the kubeconfig %s" % path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except yaml.YAMLError as exc:  # PyYAML quotes the bad line, which may be a token: the position only
        raise HttpsError(syntax_error_message("the kubeconfig %s" % path, exc)) from None
    except OSError as exc:
        raise HttpsError("cannot read the kubeconfig %s: %s" % (path, exc)) from exc
    if not isinstance(config, dict):
        raise HttpsError("the kubeconfig %s is not a kubeconfig (no mapping at its top)" % path)
    name = context or config.get("current-context")
    contexts = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    if context and context not in contexts:
        raise HttpsError(
            "the kubeconfig %s has no context %r (it has: %s)"
            % (path, context, ", ".join(map(str, contexts)))
        )
    entry = _kubeconfig_entry(config, "context", name)
    user = _kubeconfig_entry(config, "user", entry.get("user"))
    cluster = _kubeconfig_entry(config, "cluster", entry.get("cluster"))
    base = os.path.dirname(os.path.abspath(path))

    def file_or_data(source: t.Dict[str, t.Any], file_key: str) -> FileOrData:
        if source.get(file_key + "-data"):
            return base64.b64decode(source[file_key + "-data"])
        if source.get(file_key):
            return os.path.join(base, source[file_key])
        return None

    return Kubeconfig(
        path=path,
        server=cluster.get("server") or None,
        ca=file_or_data(cluster, "certificate-authority"),
        cert=file_or_data(user, "client-certificate"),
        key=file_or_data(user, "client-key"),
        token=user.get("token") or None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def _file(endpoint: Endpoint, name: str, value: FileOrData) -> t.Optional[str]:
    """A path for the ssl module: the kubeconfig's own file, or its embedded data in a private file."""
    if isinstance(value, bytes):
        return endpoint.materialize(name, value)
    return value


def apiserver_endpoint(
    url: str,
    *,
    client_cert: t.Optional[str] = None,
    client_key: t.Optional[str] = None,
    token: t.Optional[str] = None,
    ca_file: t.Optional[str] = None,
    kubeconfig: t.Optional[Kubeconfig] = None,
    manifest_flags: t.Optional[t.Dict[str, t.Optional[str]]] = None,
    timeout: float = 10,
    validate_certs: t.Optional[bool] = None,
) -> Endpoint:
    """An Endpoint for url with the first credentials found (see the docstring above).

    The CA: ca_file, else the kubeconfig's, else the manifest's --client-ca-file. Certificates are verified
    unless validate_certs is false, or it is unset and the kubeconfig says insecure-skip-tls-verify.
    """
    flags = manifest_flags or {}
    verify = validate_certs if validate_certs is not None else not (kubeconfig and kubeconfig.insecure)
    endpoint = Endpoint(url, ca_file=ca_file, timeout=timeout, verify=verify)
    if client_cert:
        endpoint.cert_file, endpoint.key_file = client_cert, client_key or client_cert
    elif token:
        endpoint.token = token
    elif kubeconfig is not None:
        if not (kubeconfig.cert or kubeconfig.token):
            raise HttpsError(
                "the kubeconfig %s has no client certificate or token for its context" % kubeconfig.path
            )
        endpoint.cert_file = _file(endpoint, "client.crt", kubeconfig.cert)
        endpoint.key_file = _file(endpoint, "client.key", kubeconfig.key)
        endpoint.token = kubeconfig.token
    elif flags.get("--kubelet-client-certificate"):
        endpoint.cert_file = flags["--kubelet-client-certificate"]
        endpoint.key_file = flags.get("--kubelet-client-key")
    else:
        raise HttpsError(
            "no credentials for the apiserver: give client_cert and client_key (or api_key), or a kubeconfig "
            "that exists on the master (kubeadm: /etc/kubernetes/admin.conf)"
        )
    if endpoint.ca_file is None and kubeconfig is not None:
        endpoint.ca_file = _file(endpoint, "ca.crt", kubeconfig.ca)
    if endpoint.ca_file is None:
        endpoint.ca_file = flags.get("--client-ca-file")
    return endpoint
