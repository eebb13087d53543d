"""A p2p-store client in Python's standard library alone, from PROTOCOL.md (§1.1 to §1.4, §12).

    client.py id CERT.pem                        prints the peer ID of a certificate
    client.py talk HOST PORT CERT.pem KEY.pem ID  TLS 1.3 to a server that must have ID, Hello,
                                                  then one List; prints the Welcome's version
                                                  and the number of parts listed
"""
import base64
import hashlib
import socket
import ssl
import struct
import sys

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def peer_id(spki_der):
    text = base64.b32encode(hashlib.sha256(spki_der).digest()[:20]).decode()
    factor, total = 1, 0
    for c in text:
        addend = factor * ALPHABET.index(c)
        factor = 2 if factor == 1 else 1
        total += addend // 32 + addend % 32
    text += ALPHABET[(32 - total % 32) % 32]
    return "-".join(text[i:i + 11] for i in range(0, 33, 11))


def tlv(der, at):
    """The tag, where the content starts, and its length, of the DER item at `at`."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[at:at + count], "big")
        at += count
    return tag, at, length


def spki_of(cert_der):
    """The SubjectPublicKeyInfo of a certificate: the seventh element of tbsCertificate."""
    _, tbs, _ = tlv(cert_der, 0)
    _, at, _ = tlv(cert_der, tbs)
    tag, content, length = tlv(cert_der, at)
    if tag == 0xA0:  # the optional [0] version
        at = content + length
    for _ in range(5):  # serial, signature algorithm, issuer, validity, subject
        _, content, length = tlv(cert_der, at)
        at = content + length
    _, content, length = tlv(cert_der, at)
    return cert_der[at:content + length]


def pem_der(path):
    lines = open(path).read().split("-----")[2]
    return base64.b64decode("".join(lines.split()))


def frame(variant, fields):
    header = struct.pack("<I", variant) + fields
    return struct.pack("<I", len(header)) + header


def read_exact(tls, count):
    data = b""
    while len(data) < count:
        more = tls.recv(count - len(data))
        if not more:
            raise EOFError("the server closed")
        data += more
    return data


def read_frame(tls):
    (length,) = struct.unpack("<I", read_exact(tls, 4))
    return read_exact(tls, length)


def talk(host, port, cert, key, expected):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["p2ps/2"])
    ctx.load_cert_chain(cert, key)
    tls = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=60))
    server = peer_id(spki_of(tls.getpeercert(binary_form=True)))
    if server != expected:
        sys.exit(f"the server's ID is {server}, not {expected}")
    name = b"python"
    tls.sendall(frame(0, b"P2PS" + struct.pack("<HQ", 2, len(name)) + name))
    welcome = read_frame(tls)
    variant, version = struct.unpack("<IH", welcome[:6])
    if variant != 0:
        sys.exit(f"expected Welcome, got variant {variant}: {welcome!r}")
    tls.sendall(frame(3, struct.pack("<Q", 1) + b"\x00" + struct.pack("<I", 100)))
    page = read_frame(tls)
    variant, request, count = struct.unpack("<IQQ", page[:20])
    if (variant, request) != (6, 1):
        sys.exit(f"expected the Page of request 1, got {page!r}")
    print(f"version {version}, {count} parts")


if __name__ == "__main__":
    if sys.argv[1] == "id":
        print(peer_id(spki_of(pem_der(sys.argv[2]))))
    else:
        talk(*sys.argv[2:7])
