"""Every ssh_config keyword OpenSSH knows, how its value is checked, and what rstfleet does with it.

OpenSSH refuses a whole config file for one bad line (`Port abc`, `ConnectTimeout x`, an unknown
keyword), so rstfleet checks every line the same way before any host is touched, and says which
directives it cannot carry out instead of ignoring them.  The rules follow OpenSSH 9.2's readconf.c
(the oracle the tests run is the local `ssh -G`); newer keywords (up to OpenSSH 10) and Debian's
are accepted too, so a config that a newer or distribution ssh reads is not refused.

Values are checked, not interpreted, except for the directives the connection plan uses (see
ssh_config.py).  Algorithm lists (Ciphers, KexAlgorithms, ...) are not checked name by name: those
directives are named in the unhonoured warning anyway.
"""

from __future__ import annotations

import re
import socket
from typing import Callable

INT_MAX = 2 ** 31 - 1
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
FLAG = ("yes", "no", "true", "false")

Parser = Callable[[tuple, str], object]


def one(args: tuple) -> str:
    """The single argument most keywords take; OpenSSH refuses a missing or extra one."""
    if not args or args[0] == "":
        raise ValueError("missing argument")
    if len(args) > 1:
        raise ValueError(f"extra arguments at end of line ({' '.join(args[1:])!r})")
    return args[0]


def choice(*allowed: str) -> Parser:
    """A word from a fixed set, compared without case as OpenSSH does: the value, lowercased."""
    def parse(args, raw):
        value = one(args)
        if value.lower() not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value.lower()
    return parse


def strtonum(text: str, high: int) -> int | None:
    """OpenSSH's strtonum(text, 0, high): a base-10 integer in range, else None."""
    if not re.fullmatch(r"[ \t]*[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if 0 <= value <= high else None


def port_number(text: str) -> int:
    """a2port(): 1..65535 or a TCP service name from /etc/services ('ssh' is 22)."""
    value = strtonum(text, 65535)
    if value is None:
        try:
            value = socket.getservbyname(text, "tcp")
        except (OSError, UnicodeError):
            value = None
    if not value:
        raise ValueError(f"bad port {text!r} (a number 1-65535 or a service name)")
    return value


def seconds(text: str) -> int:
    """convtime(): '30', '1m30s', '2h' -> seconds; OpenSSH refuses anything else."""
    step = r"[ \t]*([+-]?[0-9]+)([smhdwSMHDW]?)"
    if not re.fullmatch(f"(?:{step})+", text):
        raise ValueError(f"invalid time value {text!r} (seconds, or like 1m30s)")
    parts = [(int(number), unit.lower()) for number, unit in re.findall(step, text)]
    total = sum(number * TIME_UNITS[unit] for number, unit in parts)
    if any(number < 0 for number, _ in parts) or total > INT_MAX:
        raise ValueError(f"invalid time value {text!r} (seconds, or like 1m30s)")
    return total


def parse_port(args, raw):
    return port_number(one(args))


def parse_time(args, raw):
    """A time, or `none` (ConnectTimeout none: OpenSSH's default, the system's TCP timeout)."""
    value = one(args)
    return None if value == "none" else seconds(value)


def parse_int(args, raw):
    value = strtonum(one(args), INT_MAX)
    if value is None:
        raise ValueError(f"integer value {args[0]!r} is invalid")
    return value


def parse_string(args, raw):
    return one(args)


def parse_any(args, raw):
    """Directives whose value rstfleet neither uses nor checks beyond having one."""
    if not args:
        raise ValueError("missing argument")
    return args


def parse_command(args, raw):
    """ProxyCommand and friends take the rest of the line as written, for a shell."""
    return raw.lstrip(" \t=")


def parse_files(args, raw):
    """UserKnownHostsFile / GlobalKnownHostsFile: several paths on one line, or `none` alone."""
    if any(a == "" for a in args):
        raise ValueError("empty argument")
    if any(a.lower() == "none" for a in args) and len(args) > 1:
        raise ValueError('"none" must appear alone')
    if len(args) > 32:
        raise ValueError("too many files (OpenSSH takes at most 32)")
    return tuple(args)


def parse_time_or_flag(args, raw):
    """ControlPersist: yes/no (case-sensitive in OpenSSH) or a time."""
    value = one(args)
    return value if value in FLAG else seconds(value)


def parse_escape(args, raw):
    value = one(args)
    if value != "none" and len(value) != 1 and not re.fullmatch(r"\^[@-\x7f]", value):
        raise ValueError(f"bad escape character {value!r}")
    return value


def parse_mask(args, raw):
    if not re.fullmatch(r"[ \t]*[+]?0*[0-7]{1,3}", one(args)):
        raise ValueError(f"bad mask {args[0]!r} (octal, at most 0777)")
    return args[0]


def parse_forward(args, raw):
    if not args or args[0] == "" or len(args) > 2:
        raise ValueError("bad forwarding specification")
    return args


def parse_setenv(args, raw):
    if not args or any("=" not in a for a in args):
        raise ValueError("SetEnv wants NAME=VALUE")
    return args


def parse_sendenv(args, raw):
    if not args or any(a == "" or "=" in a for a in args):
        raise ValueError("invalid environment name")
    return args


def parse_ignored(args, raw):
    """Deprecated or unsupported keywords: OpenSSH logs them and reads on."""
    return args


def parse_structural(args, raw):
    """Host, Match and Include are read by ssh_config.py itself."""
    return args


_FLAG = choice(*FLAG)
_LOG_LEVELS = choice("quiet", "fatal", "error", "info", "verbose", "debug", "debug1", "debug2", "debug3")
_FACILITIES = choice("daemon", "user", "auth", "authpriv", *(f"local{i}" for i in range(8)))

# Display name -> how its value is checked.  Aliases map to the name OpenSSH stores them under.
KEYWORDS: dict[str, Parser] = {
    "Host": parse_structural, "Match": parse_structural, "Include": parse_structural,
    "HostName": parse_string, "Port": parse_port, "User": parse_string,
    "IdentityFile": parse_string, "CertificateFile": parse_string, "IdentitiesOnly": _FLAG,
    "UserKnownHostsFile": parse_files, "GlobalKnownHostsFile": parse_files,
    "HostKeyAlias": parse_string, "StrictHostKeyChecking":
        choice("yes", "no", "true", "false", "ask", "off", "accept-new"),
    "ConnectTimeout": parse_time, "ProxyJump": parse_command, "ProxyCommand": parse_command,
    "BatchMode": _FLAG, "IgnoreUnknown": parse_string,
    # checked, then warned about or ignored (see UNHONOURED and IGNORED)
    "AddKeysToAgent": parse_any, "AddressFamily": choice("inet", "inet6", "any"),
    "BindAddress": parse_string, "BindInterface": parse_string, "CanonicalDomains": parse_any,
    "CanonicalizeFallbackLocal": _FLAG, "CanonicalizeHostname": choice(*FLAG, "always"),
    "CanonicalizeMaxDots": parse_int, "CanonicalizePermittedCNAMEs": parse_any,
    "CASignatureAlgorithms": parse_string, "CheckHostIP": _FLAG, "Ciphers": parse_string,
    "ClearAllForwardings": _FLAG, "Compression": choice("yes", "no"),
    "ConnectionAttempts": parse_int, "ControlMaster": choice(*FLAG, "auto", "ask", "autoask"),
    "ControlPath": parse_string, "ControlPersist": parse_time_or_flag,
    "DynamicForward": parse_forward, "EnableEscapeCommandline": _FLAG, "EnableSSHKeysign": _FLAG,
    "EscapeChar": parse_escape, "ExitOnForwardFailure": _FLAG, "FingerprintHash":
        choice("md5", "sha1", "sha256", "sha384", "sha512"),
    "ForkAfterAuthentication": _FLAG, "ForwardAgent": parse_string, "ForwardX11": _FLAG,
    "ForwardX11Timeout": parse_time, "ForwardX11Trusted": _FLAG, "GatewayPorts": _FLAG,
    "GSSAPIAuthentication": _FLAG, "GSSAPIDelegateCredentials": _FLAG,
    "HashKnownHosts": _FLAG, "HostbasedAcceptedAlgorithms": parse_string,
    "HostbasedAuthentication": _FLAG, "HostKeyAlgorithms": parse_string,
    "IdentityAgent": parse_string, "IPQoS": parse_any, "KbdInteractiveAuthentication": _FLAG,
    "KbdInteractiveDevices": parse_string, "KexAlgorithms": parse_string,
    "KnownHostsCommand": parse_command, "LocalCommand": parse_command,
    "LocalForward": parse_forward, "LogLevel": _LOG_LEVELS, "LogVerbose": parse_any,
    "MACs": parse_string, "NoHostAuthenticationForLocalhost": _FLAG,
    "NumberOfPasswordPrompts": parse_int, "PasswordAuthentication": _FLAG,
    "PermitLocalCommand": _FLAG, "PermitRemoteOpen": parse_any, "PKCS11Provider": parse_string,
    "PreferredAuthentications": parse_string, "ProxyUseFdpass": _FLAG,
    "PubkeyAcceptedAlgorithms": parse_string,
    "PubkeyAuthentication": choice(*FLAG, "unbound", "host-bound"),
    "RekeyLimit": parse_any, "RemoteCommand": parse_command, "RemoteForward": parse_forward,
    "RequestTTY": choice(*FLAG, "force", "auto"), "RequiredRSASize": parse_int,
    "RevokedHostKeys": parse_string, "SecurityKeyProvider": parse_string,
    "SendEnv": parse_sendenv, "ServerAliveCountMax": parse_int, "ServerAliveInterval": parse_time,
    "SessionType": choice("none", "subsystem", "default"), "SetEnv": parse_setenv,
    "StdinNull": _FLAG, "StreamLocalBindMask": parse_mask, "StreamLocalBindUnlink": _FLAG,
    "SyslogFacility": _FACILITIES, "TCPKeepAlive": _FLAG,
    "Tunnel": choice(*FLAG, "ethernet", "point-to-point"), "TunnelDevice": parse_string,
    "UpdateHostKeys": choice(*FLAG, "ask"), "VerifyHostKeyDNS": choice(*FLAG, "ask"),
    "VisualHostKey": _FLAG, "XAuthLocation": parse_string,
    # newer than OpenSSH 9.2 (accepted so a config for a newer ssh is not refused)
    "ChannelTimeout": parse_any, "ObscureKeystrokeTiming": parse_any, "Tag": parse_string,
    "RefuseConnection": _FLAG, "WarnWeakCrypto": parse_any, "VersionAddendum": parse_any,
    # Debian's and Red Hat's GSSAPI key exchange patches
    "GSSAPIKeyExchange": _FLAG, "GSSAPIClientIdentity": parse_string,
    "GSSAPIServerIdentity": parse_string, "GSSAPIRenewalForcesRekey": _FLAG,
    "GSSAPITrustDns": _FLAG, "GSSAPIKexAlgorithms": parse_string,
    # deprecated or unsupported: OpenSSH reads on
    "Protocol": parse_ignored, "Cipher": parse_ignored, "FallBackToRsh": parse_ignored,
    "GlobalKnownHostsFile2": parse_ignored, "RhostsAuthentication": parse_ignored,
    "UserKnownHostsFile2": parse_ignored, "UseRoaming": parse_ignored, "UseRsh": parse_ignored,
    "UsePrivilegedPort": parse_ignored, "AFSTokenPassing": parse_ignored,
    "KerberosAuthentication": parse_ignored, "KerberosTGTPassing": parse_ignored,
    "RSAAuthentication": parse_ignored, "RhostsRSAAuthentication": parse_ignored,
    "CompressionLevel": parse_ignored, "UseBlacklistedKeys": parse_ignored,
}
ALIASES = {
    "identityfile2": "IdentityFile", "challengeresponseauthentication": "KbdInteractiveAuthentication",
    "skeyauthentication": "KbdInteractiveAuthentication",
    "tisauthentication": "KbdInteractiveAuthentication", "dsaauthentication": "PubkeyAuthentication",
    "keepalive": "TCPKeepAlive", "hostbasedkeytypes": "HostbasedAcceptedAlgorithms",
    "pubkeyacceptedkeytypes": "PubkeyAcceptedAlgorithms", "smartcarddevice": "PKCS11Provider",
    "setuptimeout": "ConnectTimeout", "protocolkeepalives": "ServerAliveInterval",   # Debian
}
CANONICAL = {name.lower(): name for name in KEYWORDS} | ALIASES

# Directives that change where, how or through what a connection is made, which rstfleet does not
# carry out: named in one warning per run.  The value, when it is one of these, is what rstfleet
# does anyway, and is not worth a warning.
UNHONOURED: dict[str, tuple[str, ...]] = {
    "AddressFamily": ("any",), "BindAddress": (), "BindInterface": (),
    "CanonicalDomains": ("none",), "CanonicalizeHostname": ("no", "false"),
    "CanonicalizePermittedCNAMEs": ("none",), "CASignatureAlgorithms": (),
    "CertificateFile": (), "Ciphers": (), "ControlMaster": ("no", "false"),
    "ControlPath": ("none",), "DynamicForward": (), "ForwardAgent": ("no", "false"),
    "ForwardX11": ("no", "false"), "HostbasedAcceptedAlgorithms": (),
    "HostbasedAuthentication": ("no", "false"), "HostKeyAlgorithms": (),
    "IdentityAgent": ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"), "KexAlgorithms": (),
    "KnownHostsCommand": ("none",), "LocalForward": (), "MACs": (),
    "NoHostAuthenticationForLocalhost": ("no", "false"), "PKCS11Provider": ("none",),
    "ProxyUseFdpass": ("no", "false"), "PubkeyAcceptedAlgorithms": (),
    "PubkeyAuthentication": ("yes", "true", "unbound", "host-bound"), "RefuseConnection": ("no", "false"),
    "RemoteForward": (), "RequiredRSASize": ("1024",), "RevokedHostKeys": ("none",),
    "SecurityKeyProvider": ("internal",), "StrictHostKeyChecking": ("yes", "true", "ask", "accept-new"),
    "Tunnel": ("no", "false"), "VerifyHostKeyDNS": ("no", "false"),
    "GSSAPIKeyExchange": ("no", "false"),
}

# Read and checked, then left alone: they change what an interactive session looks like or how
# ssh logs, not which host is reached, as whom, or how its key is checked (docs/ssh.md).
IGNORED = tuple(sorted(set(KEYWORDS) - set(UNHONOURED) - {
    "Host", "Match", "Include", "HostName", "Port", "User", "IdentityFile", "IdentitiesOnly",
    "UserKnownHostsFile", "GlobalKnownHostsFile", "HostKeyAlias", "ConnectTimeout", "ProxyJump",
    "ProxyCommand", "BatchMode", "IgnoreUnknown"}))


def canonical(keyword: str) -> str | None:
    """'PORT' -> 'Port'; None for a keyword OpenSSH does not know."""
    return CANONICAL.get(keyword.lower())


def needs_warning(name: str, value) -> bool:
    """Whether an obtained directive changes the connection in a way rstfleet does not follow."""
    if name not in UNHONOURED:
        return False
    words = value if isinstance(value, tuple) else (value,)
    neutral = {word.lower() for word in UNHONOURED[name]}
    return not (len(words) == 1 and str(words[0]).lower() in neutral)
