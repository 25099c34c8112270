//! The Debian package (issue 16): `packaging/build-deb.sh` builds it from
//! the test binaries, and its contents, control fields, maintainer scripts,
//! generated man pages and the systemd unit are checked (`dpkg-deb -c`,
//! `-I`, `systemd-analyze verify` where systemd is installed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(out: &Path) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_hactor")).parent().unwrap();
    let stdout = run(Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh"))
        .args(["--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--compress", "gzip"]));
    PathBuf::from(stdout.lines().last().expect("the script prints the .deb path"))
}

#[test]
fn the_package_holds_binaries_units_manuals_completions_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build(dir.path());
    assert!(deb.extension().is_some_and(|e| e == "deb"), "{}", deb.display());

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"))
            .to_string()
    };
    for bin in ["/usr/sbin/hactor", "/usr/sbin/ha-manager"] {
        assert!(entry(bin).starts_with("-rwxr-xr-x root/root"), "{}", entry(bin));
    }
    for file in [
        "/lib/systemd/system/hactor.service",
        "/etc/default/hactor",
        "/usr/share/man/man1/hactor.1.gz",
        "/usr/share/man/man1/ha-manager.1.gz",
        "/usr/share/bash-completion/completions/hactor",
        "/usr/share/bash-completion/completions/ha-manager",
        "/usr/share/zsh/vendor-completions/_ha-manager",
        "/usr/share/fish/vendor_completions.d/hactor.fish",
        "/usr/share/doc/hactor/examples/hactor.example.toml",
        "/usr/share/doc/hactor/examples/hactor.host.toml",
        "/usr/share/doc/hactor/examples/fence.cfg",
        "/usr/share/doc/hactor/copyright",
    ] {
        assert!(entry(file).starts_with("-rw-r--r-- root/root"), "{}", entry(file));
    }

    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: hactor",
        &format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "Section: admin",
        "Conflicts: watchdog",
        "Installed-Size: ",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(info.contains(script), "{script} missing:\n{info}");
    }

    // The staging tree beside the .deb is what went in: check what the
    // listing cannot show.
    let stage = deb.with_extension("");
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(stage.join("DEBIAN").join(script)));
    }
    let man = run(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc {}",
        stage.join("usr/share/man/man1/hactor.1.gz").display()
    )));
    assert!(man.contains(".TH hactor 1") && man.contains("check\\-config"), "{man}");
    let man = run(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc {}",
        stage.join("usr/share/man/man1/ha-manager.1.gz").display()
    )));
    assert!(man.contains(".TH ha-manager 1"), "{man}");
    let completion = std::fs::read_to_string(stage.join("usr/share/bash-completion/completions/hactor")).unwrap();
    assert!(
        completion.contains("check-config"),
        "bash completion lacks check-config"
    );

    // The host template the postinst installs is a valid configuration
    // with the host defaults.
    let host = stage.join("usr/share/doc/hactor/examples/hactor.host.toml");
    let checked = run(Command::new(stage.join("usr/sbin/hactor"))
        .args(["check-config", "--config"])
        .arg(&host));
    assert!(
        checked.contains("state_dir /var/lib/hactor, socket /run/hactor/hactor.sock"),
        "{checked}"
    );

    verify_unit(&stage);
}

/// `systemd-analyze verify` on the packaged unit, its ExecStart pointed at
/// the staged binary; any diagnostic (an unknown key is only a warning to
/// systemd) fails the test.
fn verify_unit(stage: &Path) {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        eprintln!("systemd-analyze not installed: the unit is not verified");
        return;
    }
    let unit = std::fs::read_to_string(stage.join("lib/systemd/system/hactor.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/hactor --config /etc/hactor/hactor.toml"));
    assert!(unit.contains("Type=notify") && unit.contains("Restart=on-failure"));
    assert!(unit.contains("After=network-online.target"));
    // Nothing that would close /dev/watchdog to the daemon (ProtectClock=
    // implies a device allow-list) or sandbox the services it starts.
    for forbidden in [
        "ProtectClock=",
        "PrivateDevices=",
        "DeviceAllow=",
        "DevicePolicy=",
        "PrivateTmp=",
    ] {
        assert!(
            !unit.lines().any(|l| l.starts_with(forbidden)),
            "{forbidden} in the unit"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hactor.service");
    let staged = stage.join("usr/sbin/hactor");
    std::fs::write(&path, unit.replace("/usr/sbin/hactor", staged.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let diagnostics = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && diagnostics.trim().is_empty(),
        "systemd-analyze verify: {diagnostics}"
    );
}
