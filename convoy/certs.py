"""TLS certificates of a coordinator served over TCP: made (self-signed) by the coordinator,
or issued by a CA and passed with --cert; named by their SHA-256 fingerprint on both sides.

A fingerprint is what an admin reads out to users and what a client pins, so it is one
spelling everywhere: 64 lower-case hex digits of the SHA-256 of the certificate's DER bytes.
Users may paste it as ssh and browsers show it (`SHA256:` in front, colons between bytes,
upper case); `normal_fingerprint` takes those too.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import ssl

from convoy.errors import UsageError

# Self-signed certificates live long: rotating one means every user pins anew, which an
# admin does on purpose (delete CONVOY_HOME/tls), not on a timer.
VALID_DAYS = 3650
COMMON_NAME = "convoy coordinator"


def der_of(pem: bytes) -> bytes:
    """The first certificate of a PEM file, as DER."""
    text = pem.decode("ascii", "replace")
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        raise UsageError("not a PEM certificate (no BEGIN CERTIFICATE line)")
    return ssl.PEM_cert_to_DER_cert(text[start : end + len("-----END CERTIFICATE-----")])


def fingerprint(pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate's first certificate (64 hex digits)."""
    return hashlib.sha256(der_of(pem)).hexdigest()


def normal_fingerprint(text: str) -> str:
    """A fingerprint as a user may paste it ("SHA256:AB:CD:...", any case) in our spelling."""
    hexed = re.sub(r"^sha-?256:", "", text.strip(), flags=re.I).replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", hexed):
        raise UsageError(
            f"{text!r} is not a SHA-256 certificate fingerprint (64 hex digits, as "
            "`convoy up --listen` prints it)"
        )
    return hexed


def names_in(pem: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is for (its SANs), then its common name."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def is_self_signed(pem: bytes) -> bool:
    """Whether a PEM file's first certificate is its own issuer: named so (issuer == subject)
    and signed by its own key. Those are pinned as their own root; others are verified up to
    a CA."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    cert = x509.load_der_x509_certificate(der_of(pem))
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def self_signed(names: list[str]) -> tuple[bytes, bytes]:
    """A new certificate for `names` (host names or IP addresses) and its key, both PEM.

    EC P-256: every TLS stack grpc is built with speaks it (Ed25519 certificates it does not
    take everywhere)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # in order, once each
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little behind
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # Its own CA: a client trusts exactly this certificate as its only root.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
