#!/usr/bin/env python3
"""Writes the CA certificates OVMF's HTTPS boot trusts, in the form EDK2 reads from the fw_cfg
file etc/edk2/https/cacerts: one EFI_SIGNATURE_LIST per certificate, of type EFI_CERT_X509_GUID,
each holding one EFI_SIGNATURE_DATA (an owner GUID, then the certificate in DER).

    edk2-cacerts.py CA.pem [CA2.pem ...] OUT
"""
import base64
import re
import struct
import sys
import uuid

EFI_CERT_X509_GUID = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
# Any GUID names the owner; this one is the lab's.
OWNER = uuid.UUID("6c616262-6f6f-7470-6f6c-696379636131")


def ders(pem_text):
    for body in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem_text, re.S):
        yield base64.b64decode("".join(body.split()))


def signature_list(der):
    signature_size = 16 + len(der)
    header = EFI_CERT_X509_GUID.bytes_le + struct.pack("<III", 28 + signature_size, 0, signature_size)
    return header + OWNER.bytes_le + der


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: edk2-cacerts.py CA.pem [CA2.pem ...] OUT")
    out = b""
    for path in sys.argv[1:-1]:
        found = list(ders(open(path).read()))
        if not found:
            sys.exit(f"edk2-cacerts.py: no certificate in {path}")
        out += b"".join(signature_list(d) for d in found)
    open(sys.argv[-1], "wb").write(out)


if __name__ == "__main__":
    main()
