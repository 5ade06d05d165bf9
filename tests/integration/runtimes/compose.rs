//! The exporter service of deploy/compose/compose.yaml, run for real with exactly the
//! settings the file gives it: host PID and network, user, the `cap_drop` and `cap_add`
//! lists, `read_only`, `security_opt`, command and volumes, read from the file by a YAML
//! parser and handed to `docker run`, never re-typed here.
//!
//! Compose itself cannot run the file here: its `build:` and the other services need
//! images from a registry, and Debian's docker-compose 1.29 rejects the Compose Spec's
//! top-level `name:`. So the image is the binary under test made into an image with
//! `docker import`, tagged with the file's image name, with the Dockerfile's entrypoint
//! and user. Where `/` is a private mount (some sandboxes, this one), `rslave` binds
//! fail: there compose.private-root.yaml overrides the volumes it names, as
//! `docker compose -f compose.yaml -f compose.private-root.yaml` would.
//!
//! The "host" network here is dockerd's: a private namespace, since the rig runs dockerd
//! in one (the test refuses to run against a dockerd on the host's network).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use super::containers::{Container, Pod, Program};
use super::{info, rig, tag};
use crate::exporter::{http_get, Scrape, BIN};

const COMPOSE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose");
const SERVICE: &str = "sockdiag-exporter";

/// The service's entry of a compose file.
fn service(file: &Path) -> serde_norway::Mapping {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let compose: Value = serde_norway::from_str(&text).expect("compose file YAML");
    compose["services"][SERVICE]
        .as_mapping()
        .unwrap_or_else(|| panic!("{}: no services.{SERVICE}", file.display()))
        .clone()
}

/// `base` with `overlay` applied as Compose merges a second file: volumes by target
/// path, every other key replaced.
fn merge(mut base: serde_norway::Mapping, overlay: serde_norway::Mapping) -> serde_norway::Mapping {
    for (key, value) in overlay {
        if key.as_str() == Some("volumes") {
            let target = |v: &Value| {
                v.as_str()
                    .and_then(|s| s.split(':').nth(1))
                    .map(String::from)
            };
            let mut volumes: Vec<Value> = base
                .get("volumes")
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            for volume in value.as_sequence().cloned().unwrap_or_default() {
                volumes.retain(|v| target(v) != target(&volume));
                volumes.push(volume);
            }
            base.insert(key, Value::Sequence(volumes));
        } else {
            base.insert(key, value);
        }
    }
    base
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{key}: not a list"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => panic!("{key}: {other:?} is not a string"),
        })
        .collect()
}

/// `docker run` arguments for the service (image and command last). A key this test does
/// not know fails it: the file's settings are all passed, or the test says which is not.
fn docker_run_args(service: &serde_norway::Mapping, name: &str) -> (Vec<String>, String) {
    let mut args = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    let (mut image, mut command) = (None, Vec::new());
    for (key, value) in service {
        let key = key.as_str().expect("string keys");
        let scalar = || match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            other => panic!("{key}: {other:?}"),
        };
        match key {
            // Needs the Rust toolchain image from a registry; the image is imported.
            "build" => {}
            "image" => image = Some(scalar()),
            "network_mode" => args.extend(["--network".into(), scalar()]),
            "pid" => args.extend(["--pid".into(), scalar()]),
            "user" => args.extend(["--user".into(), scalar()]),
            "restart" => args.extend(["--restart".into(), scalar()]),
            "read_only" => {
                if value.as_bool() == Some(true) {
                    args.push("--read-only".into());
                }
            }
            "cap_drop" | "cap_add" | "security_opt" => {
                let flag = format!("--{}", key.replace('_', "-"));
                for item in strings(value, key) {
                    args.extend([flag.clone(), item]);
                }
            }
            "volumes" => {
                for volume in strings(value, key) {
                    args.extend(["-v".into(), absolute_source(&volume)]);
                }
            }
            "command" => command = strings(value, key),
            other => panic!("compose key {other:?} of {SERVICE} is not passed to docker run"),
        }
    }
    let image = image.expect("the service names its image");
    args.push(image.clone());
    args.extend(command);
    (args, image)
}

/// A volume with a relative source resolved against the compose file's directory.
fn absolute_source(volume: &str) -> String {
    match volume.split_once(':') {
        Some((source, rest)) if source.starts_with('.') => {
            format!("{}:{rest}", Path::new(COMPOSE_DIR).join(source).display())
        }
        _ => volume.to_string(),
    }
}

/// Whether `/` is a private mount (no propagation), where `rslave` cannot be set.
fn root_is_private() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        fields.get(4) == Some(&"/")
            && !fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .any(|f| f.starts_with("shared:") || f.starts_with("master:"))
    })
}

/// The binary under test as an image: it and the libraries it links, the Dockerfile's
/// entrypoint and user. Removed on drop, with the directory it was made in.
struct Image(String, PathBuf);

impl Image {
    fn import(name: &str, dir: &Path) -> Image {
        assert!(
            !rig::succeeds("docker", &["image", "inspect", name]),
            "an image {name} exists already: this test would replace it"
        );
        let root = dir.join("rootfs");
        let mut files = vec![PathBuf::from(BIN)];
        for line in rig::run("ldd", &[BIN]).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux...`
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.push(PathBuf::from(path));
            }
        }
        for file in &files {
            let inside = if file == Path::new(BIN) {
                root.join("usr/local/bin/sockdiag_exporter")
            } else {
                root.join(file.strip_prefix("/").unwrap())
            };
            std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
            std::fs::copy(file, &inside).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let script = format!(
            "tar -C '{}' -c . | docker import --change 'ENTRYPOINT [\"/usr/local/bin/sockdiag_exporter\"]' \
             --change 'USER 65532:65532' - {name} >/dev/null",
            root.display()
        );
        rig::run("sh", &["-c", &script]);
        Image(name.to_string(), dir.to_path_buf())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = rig::succeeds("docker", &["rmi", "-f", &self.0]);
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Scrapes 127.0.0.1:10120 from inside `netns` (dockerd's).
fn scrape_in(netns: &Path) -> Option<Scrape> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).expect("open dockerd's netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let address = "127.0.0.1:10120".parse().unwrap();
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        let response = http_get(address, "/metrics", None);
        (response.status == 200).then(|| Scrape::parse(&response.body))
    })
    .join()
    .expect("scrape thread")
}

pub fn compose_exporter_service_with_exactly_its_settings_names_the_other_containers() {
    rig::ensure();
    let netns = rig::dockerd_netns();
    let inode = |path: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat netns").ino()
    };
    assert_ne!(
        inode(&netns),
        inode(Path::new("/proc/self/ns/net")),
        "dockerd runs on the host's network: this test would listen there"
    );
    let mut service = service(&Path::new(COMPOSE_DIR).join("compose.yaml"));
    if root_is_private() {
        service = merge(
            service,
            self::service(&Path::new(COMPOSE_DIR).join("compose.private-root.yaml")),
        );
    }
    let tag = tag();
    let dir = std::env::temp_dir().join(format!("sockdiag-it-compose-{tag}"));
    let (args, image) = docker_run_args(&service, &format!("sockdiag-it-compose-{tag}"));
    let _image = Image::import(&image, &dir);
    let docker = Container::docker(&format!("sockdiag-it-web-{tag}"), Program::Sleep, &[]);
    let pod = Pod::run("shop", &format!("cart-{tag}"), Program::Sleep);
    let podman = Container::podman(&format!("sockdiag-it-pm-{tag}"), Program::Sleep);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = rig::run("docker", &args).trim().to_string();
    let _exporter = scopeguard(id.clone());
    let mut names = BTreeMap::new();
    rig::wait_until(
        "the exporter names the containers",
        Duration::from_secs(60),
        || {
            let Some(all) = scrape_in(&netns) else {
                return false;
            };
            names = [&docker, &pod.sandbox, &podman]
                .iter()
                .map(|c| (c.name.clone(), info(&all, c.netns_inode())))
                .collect();
            names.values().all(|info| {
                info.as_ref().is_some_and(|i| {
                    !i["container_name"].is_empty()
                        || i.get("pod_name").is_some_and(|p| !p.is_empty())
                })
            })
        },
    );
    let name_of = |c: &Container| names[&c.name].as_ref().unwrap().clone();
    assert_eq!(name_of(&docker)["container_name"], docker.name);
    assert_eq!(name_of(&podman)["container_name"], podman.name);
    assert_eq!(name_of(&pod.sandbox)["pod_name"], format!("cart-{tag}"));
    assert_eq!(name_of(&pod.sandbox)["pod_namespace"], "shop");
}

/// Removes the exporter's container when dropped.
fn scopeguard(id: String) -> impl Drop {
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = rig::succeeds("docker", &["rm", "-f", &self.0]);
        }
    }
    Remove(id)
}
