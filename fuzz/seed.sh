#!/usr/bin/env bash
# Builds the seed inputs of every fuzz target under fuzz/seeds/ (not committed) from real
# captures: the inet_diag, unix_diag and udp_diag dumps under crates/core/src/source/*/testdata (split into
# datagrams), this machine's /proc/net/{netstat,snmp,snmp6}, sysctls and /proc/self/cgroup, the
# /proc fixtures and the cgroup, Docker and web config cases of the unit tests, the runtime
# state captured from real containerd and Podman containers (crates/core/src/source/runtime/testdata),
# config.example.toml and deploy/web-config. `fuzz/run.sh --seed` then minimizes them
# with the committed corpus into fuzz/corpus/ (cargo fuzz cmin).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/seeds
rm -rf "$out"
mkdir -p "$out"/{sock_diag_inet,sock_diag_unix,sock_diag_udp,proc_net_snmp,sysctl,cgroup,uid_map,docker_config,runtime_spec,podman_conmon,config_toml,web_config}

python3 - "$out" <<'PY'
import hashlib, os, re, struct, sys
out = sys.argv[1]

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

def datagrams(path):
    b = open(path, "rb").read()
    i = 0
    while i < len(b):
        (n,) = struct.unpack_from("=I", b, i)
        yield b[i + 4:i + 4 + n]
        i += 4 + n

def messages(datagram):
    j = 0
    while j + 16 <= len(datagram):
        (length,) = struct.unpack_from("=I", datagram, j)
        yield datagram[j:j + ((length + 3) & ~3)]
        j += (length + 3) & ~3

# sock_diag: each captured datagram whole, and each of its messages alone.
for target, capture in (("sock_diag_inet", "crates/core/src/source/inet_diag/testdata/loopback-v4-v6.bin"),
                        ("sock_diag_unix", "crates/core/src/source/unix_diag/testdata/loopback-unix.bin"),
                        ("sock_diag_udp", "crates/core/src/source/udp_diag/testdata/loopback-udp.bin")):
    for d in datagrams(capture):
        put(target, d)
        for m in messages(d):
            put(target, m)
    # NLMSG_ERROR (-EBUSY, with the failed request's header) and DONE carrying -ENOMEM.
    put(target, struct.pack("=IHHIIi", 36, 2, 0, 5, 0, -16) + bytes(16))
    put(target, struct.pack("=IHHIIi", 20, 3, 2, 5, 0, -12))

# cgroup: this process's file, and every layout of the unit tests (crates/core/src/source/cgroup.rs).
put("cgroup", open("/proc/self/cgroup").read())
ID = "3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a"
UID = "8f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1"
src = open("crates/core/src/source/cgroup.rs").read()
for template in re.findall(r'path\("([^"]*)"\)', src):
    path = template.replace("UID_", UID.replace("-", "_")).replace("UID", UID).replace("ID", ID)
    put("cgroup", path)
    put("cgroup", "0::" + path + "\n")
put("cgroup", f"12:pids:/system.slice/docker-{ID}.scope\n11:memory:/system.slice/docker-{ID}.scope\n"
              f"1:name=systemd:/system.slice/docker-{ID}.scope\n0::/system.slice/docker-{ID}.scope\n")
put("cgroup", f"4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n")
put("cgroup", "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/b95505\n0::/\n")
put("cgroup", "0::/kubepods/burstable/pod5a3d6b5e6a9c7c6a0b1c2d3e4f5a6b7c/" + ID + "\n")

# uid_map: this process's, and the unit tests' maps (crates/core/src/source/userns.rs).
put("uid_map", open("/proc/self/uid_map").read())
src = open("crates/core/src/source/userns.rs").read()
for case in re.findall(r'owner_of_map\("((?:[^"\\]|\\.)*)"\)', src):
    put("uid_map", case.encode().decode("unicode_escape"))

# Docker config.v2.json: the unit tests' files (crates/core/src/source/docker.rs).
src = open("crates/core/src/source/docker.rs").read()
put("docker_config", re.search(r'const CONFIG: &str = r#"(.*?)"#;', src, re.S).group(1))
for case in re.findall(r'parse_config\(r#"(.*?)"#\)', src):
    put("docker_config", case)

# Runtime state: the OCI specs and conmon files captured from real runtimes (and CRI-O's
# layout), and the unit tests' inline cases (crates/core/src/source/runtime/*.rs).
rt = "crates/core/src/source/runtime"
for name in sorted(os.listdir(rt + "/testdata")):
    data = open(os.path.join(rt, "testdata", name), "rb").read()
    if name.endswith(".json"):
        put("runtime_spec", data)
    else:
        put("podman_conmon", data)
for module in ("oci", "containerd", "crio"):
    for case in re.findall(r'r#"(\{.*?)"#', open(f"{rt}/{module}.rs").read(), re.S):
        put("runtime_spec", case)
for case in re.findall(r'format!\("((?:[^"\\]|\\.)*conmon(?:[^"\\]|\\.)*)"\)', open(f"{rt}/podman.rs").read()):
    put("podman_conmon", case.replace("{ID}", "a7e829961b44e1bdd2a7591833fd07cfbede52807db110689943a49b2798c21e").replace("\\u{0}", "\\0").replace("\\0", "\0"))

# Web config: the unit tests' YAML cases (src/web_config/tests.rs) with their TLS prefix.
src = open("src/web_config/tests.rs").read()
tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
for case in re.findall(r'\("((?:[^"\\]|\\.)*)"\.into\(\)', src):
    put("web_config", case.encode().decode("unicode_escape"))
for case in re.findall(r'format!\("\{TLS\}((?:[^"\\]|\\.)*)"\)', src):
    put("web_config", tls + case.encode().decode("unicode_escape"))
PY

# /proc text files: this machine's, and the fixtures.
cp /proc/net/netstat "$out/proc_net_snmp/host-netstat"
cp /proc/net/snmp "$out/proc_net_snmp/host-snmp"
cp /proc/net/snmp6 "$out/proc_net_snmp/host-snmp6"
for f in tests/fixtures/proc/netstat* tests/fixtures/proc/snmp*; do
  if [ -f "$f" ]; then cp "$f" "$out/proc_net_snmp/$(basename "$f")"; else
    for g in "$f"/*; do cp "$g" "$out/proc_net_snmp/$(basename "$f")-$(basename "$g")"; done; fi
done
for f in /proc/sys/net/ipv4/{tcp_fin_timeout,tcp_keepalive_time,tcp_keepalive_intvl,tcp_keepalive_probes,tcp_tw_reuse,tcp_max_tw_buckets,tcp_max_syn_backlog,ip_local_port_range} /proc/sys/net/core/somaxconn; do
  cp "$f" "$out/sysctl/host-$(basename "$f")"
done
find tests/fixtures/proc -path '*sys*' -type f | while read -r f; do
  cp "$f" "$out/sysctl/fixture-$(echo "$f" | tr / _)"
done

# The TOML config: the example, and environment variables after a NUL (see fuzz/src/lib.rs).
cp config.example.toml "$out/config_toml/config.example.toml"
printf 'poll_interval = "5s"\n[web]\ntelemetry_path = "/m"\nmax_requests = 3\n[log]\nlevel = "debug"\n\0POLL_INTERVAL=7s\0WEB__LISTEN_ADDRESSES=127.0.0.1:1,[::1]:2' \
  > "$out/config_toml/file-and-env"
printf '[netns]\nmax_namespaces = 10\nbind_roots = ["/run/netns"]\n[ports]\ninclude = ["80", "8000-8999"]\n\0NETNS__CONCURRENCY=65\0LOG__FORMAT=json' \
  > "$out/config_toml/netns-ports-env"

# Web config: deploy's files, and inline PEM from a throwaway self-signed certificate.
cp deploy/web-config/*.yml "$out/web_config/"
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
{
  printf 'tls_server_config:\n  cert: |\n'; sed 's/^/    /' "$tmp/cert.pem"
  printf '  key: |\n'; sed 's/^/    /' "$tmp/key.pem"
  printf '  client_auth_type: RequireAnyClientCert\n  curve_preferences: [X25519]\n'
} > "$out/web_config/inline-pem.yml"
rm -rf "$tmp"

for d in "$out"/*; do echo "$(basename "$d"): $(ls "$d" | wc -l) seeds"; done
