"""A lab certificate authority: serving and client certificates, and kubeadm-style kubeconfigs.

Keys are ECDSA P-256 (instant to generate; every Kubernetes component here accepts them). Private
keys and kubeconfigs are written 0600, like kubeadm writes /etc/kubernetes/pki and admin.conf.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


class LabPKI:
    """A CA under `directory` (created on first use, reused afterwards) that signs lab certificates."""

    def __init__(self, directory: Path, ca_name: str = "tke-kms-lab-ca") -> None:
        self.directory = Path(directory)
        self.ca = CertPair(self.directory / "ca.crt", self.directory / "ca.key")
        if self.ca.cert.exists() and self.ca.key.exists():
            self._ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
            self._ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
            return
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = _name(ca_name)
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        _write_private(self.ca.key, _key_pem(self._ca_key))
        self.ca.cert.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> CertPair:
        """Sign a certificate `name`.crt (+ `name`.key) for server and/or client authentication."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans = [x509.DNSName(d) for d in dns_names] + [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses
        ]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        pair = CertPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        _write_private(pair.key, _key_pem(key))
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def server_cert(
        self, name: str, common_name: str, *, dns_names=(), ip_addresses=("127.0.0.1",)
    ) -> CertPair:
        return self.issue(
            name,
            common_name,
            dns_names=("localhost", *dns_names),
            ip_addresses=ip_addresses,
            server=True,
        )

    def client_cert(self, name: str, common_name: str, organizations: tuple[str, ...] = ()) -> CertPair:
        return self.issue(name, common_name, organizations=organizations, client=True)

    def signing_key(self, name: str) -> CertPair:
        """A bare key pair (name.key private, name.pub public), e.g. for service-account tokens."""
        key = ec.generate_private_key(ec.SECP256R1())
        pair = CertPair(self.directory / f"{name}.pub", self.directory / f"{name}.key")
        _write_private(pair.key, _key_pem(key))
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return pair

    def kubeconfig(
        self,
        path: Path,
        server: str,
        user: str,
        credentials: CertPair,
        *,
        cluster: str = "kubernetes",
    ) -> Path:
        """A kubeconfig like kubeadm's admin.conf: CA and client credentials embedded as base64 data."""

        def b64(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        context = f"{user}@{cluster}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster,
                    "cluster": {"certificate-authority-data": b64(self.ca.cert), "server": server},
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
            "current-context": context,
            "preferences": {},
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(credentials.cert),
                        "client-key-data": b64(credentials.key),
                    },
                }
            ],
        }
        _write_private(Path(path), yaml.safe_dump(config, sort_keys=False).encode())
        return Path(path)
