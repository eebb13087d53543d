//! The `p2p-store` binary as a user runs it: real processes, real stores in temp dirs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use storage::{BackendKind, PartHash};
use support::Run;
use support::files::flip_a_byte_of_the_body;
use support::random_bytes;
use tempfile::TempDir;

const BACKENDS: [BackendKind; 2] = [BackendKind::Sled, BackendKind::Fs];

/// A scratch directory holding a store and the files a test imports and exports.
struct Workspace {
    dir: TempDir,
    backend: BackendKind,
}

impl Workspace {
    fn new(backend: BackendKind) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            backend,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn db(&self) -> PathBuf {
        self.path("peer1.db")
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(&format!("in/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `p2p-store --db <db> --backend <backend> ARGS`.
    fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .arg("--db")
            .arg(self.db())
            .args(["--backend", self.backend.name()])
            .args(args)
            .output()
            .unwrap();
        Run(output)
    }
}

#[test]
fn import_list_export_verify_remove_round_trip() {
    for backend in BACKENDS {
        let ws = Workspace::new(backend);
        let files = [
            ("binary.bin", random_bytes(1, 70_000)),
            ("empty", Vec::new()),
            ("five-megabytes.img", random_bytes(2, 5_000_000)),
            ("relatório de março.txt", "olá, mundo\n".as_bytes().to_vec()),
            ("nul and high bytes", vec![0, 0xff, 0x80, 0x0a, 0x00]),
        ];
        let paths: Vec<PathBuf> = files.iter().map(|(n, b)| ws.write(n, b)).collect();

        let imported = ws
            .run(
                ["import".as_ref()]
                    .into_iter()
                    .chain(paths.iter().map(|p| p.as_os_str())),
            )
            .ok();
        for (name, _) in &files {
            assert!(
                imported.stdout().contains(&format!("stored {name}\n")),
                "{}",
                imported.stdout()
            );
        }
        assert!(
            imported
                .stdout()
                .ends_with("5 stored, 0 already had, 0 rejected\n")
        );

        let again = ws.run(["import".as_ref(), paths[0].as_os_str()]).ok();
        assert_eq!(
            again.stdout(),
            "already had binary.bin\n0 stored, 1 already had, 0 rejected\n"
        );

        let listed: serde_json::Value =
            serde_json::from_str(&ws.run(["list", "--json"]).ok().stdout()).unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), files.len());
        for (name, bytes) in &files {
            let entry = listed.iter().find(|e| e["name"] == *name).unwrap();
            assert_eq!(entry["size"], bytes.len());
            assert_eq!(entry["hash"], PartHash::of(bytes).to_hex());
        }
        let text = ws.run(["list"]).ok().stdout();
        assert!(
            text.contains(&format!("empty\t0\t{}\n", PartHash::of(b""))),
            "{text}"
        );

        let out = ws.path("out");
        let exported = ws.run(["export".as_ref(), out.as_os_str()]).ok();
        assert!(exported.stdout().ends_with("5 exported, 0 failed\n"));
        for (name, bytes) in &files {
            let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
            assert!(written == *bytes, "{name} exported different bytes");
        }
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), files.len());

        let verified = ws.run(["verify", "--json"]).ok();
        let report: serde_json::Value = serde_json::from_str(&verified.stdout()).unwrap();
        assert_eq!(report["intact"], 5);
        assert_eq!(report["corrupt"].as_array().unwrap().len(), 0);

        let removed = ws.run(["remove", "empty", "relatório de março.txt"]).ok();
        assert_eq!(
            removed.stdout(),
            "removed empty\nremoved relatório de março.txt\n"
        );
        ws.run(["remove", "empty"]).fails(1);
        let left = ws.run(["list"]).ok().stdout();
        assert_eq!(left.lines().count(), 3, "{left}");
        assert!(!left.contains("empty"));
    }
}

#[test]
fn export_of_named_parts_keeps_existing_files_unless_forced() {
    let ws = Workspace::new(BackendKind::Sled);
    let a = ws.write("a.txt", b"alpha");
    let b = ws.write("b.txt", b"beta");
    ws.run(["import".as_ref(), a.as_os_str(), b.as_os_str()])
        .ok();
    let out = ws.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("a.txt_recebida"), b"precious").unwrap();

    let refused = ws
        .run(["export".as_ref(), out.as_os_str(), "a.txt".as_ref()])
        .fails(1);
    assert!(
        refused.stdout().contains("already exists; pass --force"),
        "{}",
        refused.stdout()
    );
    assert_eq!(
        std::fs::read(out.join("a.txt_recebida")).unwrap(),
        b"precious"
    );
    assert!(
        !out.join("b.txt_recebida").exists(),
        "only the named part is exported"
    );

    ws.run([
        "export".as_ref(),
        out.as_os_str(),
        "a.txt".as_ref(),
        "--force".as_ref(),
    ])
    .ok();
    assert_eq!(std::fs::read(out.join("a.txt_recebida")).unwrap(), b"alpha");

    let missing = ws
        .run(["export".as_ref(), out.as_os_str(), "nope".as_ref()])
        .fails(1);
    assert!(
        missing
            .stdout()
            .contains("failed nope: no part named \"nope\""),
        "{}",
        missing.stdout()
    );
}

#[test]
fn bad_names_are_refused_with_the_rule_they_break() {
    let ws = Workspace::new(BackendKind::Sled);
    let hidden = ws.write(".hidden", b"x");
    let control = ws.write("bell\u{7}", b"x");
    let fine = ws.write("fine", b"x");
    let run = ws
        .run([
            "import".as_ref(),
            hidden.as_os_str(),
            control.as_os_str(),
            fine.as_os_str(),
        ])
        .fails(1);
    let stdout = run.stdout();
    assert!(
        stdout.contains("rejected .hidden: name starts with '.'"),
        "{stdout}"
    );
    assert!(stdout.contains("control character U+0007"), "{stdout}");
    assert!(stdout.contains("stored fine\n"), "{stdout}");

    for (bad, rule) in [
        ("../x", "starts with '.'"),
        ("/etc/x", "path separator '/'"),
        ("a\\b", "path separator '\\\\'"),
        ("..", "means a directory"),
        ("evil\u{202e}txt", "bidirectional"),
    ] {
        let run = ws
            .run([
                "import".as_ref(),
                "--name".as_ref(),
                bad.as_ref(),
                fine.as_os_str(),
            ])
            .fails(2);
        assert!(run.stderr().contains(rule), "{bad:?}: {}", run.stderr());
        ws.run(["remove", bad]).fails(2);
    }
    let long = "x".repeat(201);
    let run = ws.run(["export", "out", &long]).fails(2);
    assert!(
        run.stderr().contains("201 bytes long, the limit is 200"),
        "{}",
        run.stderr()
    );
    assert!(!ws.path("out").exists());
}

#[test]
fn conflicts_keep_the_old_bytes_unless_replaced() {
    let ws = Workspace::new(BackendKind::Fs);
    let first = ws.write("first", b"original");
    let second = ws.write("second", b"something else");
    ws.run([
        "import".as_ref(),
        "--name".as_ref(),
        "doc".as_ref(),
        first.as_os_str(),
    ])
    .ok();
    let refused = ws
        .run([
            "import".as_ref(),
            "--name".as_ref(),
            "doc".as_ref(),
            second.as_os_str(),
        ])
        .fails(1);
    assert!(
        refused
            .stdout()
            .starts_with("rejected doc: part \"doc\" already holds"),
        "{}",
        refused.stdout()
    );
    let out = ws.path("out");
    ws.run(["export".as_ref(), out.as_os_str()]).ok();
    assert_eq!(
        std::fs::read(out.join("doc_recebida")).unwrap(),
        b"original"
    );

    let replaced = ws
        .run([
            "import".as_ref(),
            "--replace".as_ref(),
            "--name".as_ref(),
            "doc".as_ref(),
            second.as_os_str(),
        ])
        .ok();
    assert!(replaced.stdout().starts_with("replaced doc\n"));
    ws.run(["export".as_ref(), out.as_os_str(), "--force".as_ref()])
        .ok();
    assert_eq!(
        std::fs::read(out.join("doc_recebida")).unwrap(),
        b"something else"
    );

    ws.run([
        "import".as_ref(),
        "--name".as_ref(),
        "doc".as_ref(),
        first.as_os_str(),
        second.as_os_str(),
    ])
    .fails(2);
}

#[test]
fn a_flipped_byte_is_reported_by_name_and_never_exported() {
    for backend in BACKENDS {
        let ws = Workspace::new(backend);
        let victim = random_bytes(3, 100_000);
        let intact = random_bytes(4, 100_000);
        let paths = [
            ws.write("victim.bin", &victim),
            ws.write("intact.bin", &intact),
        ];
        ws.run([
            "import".as_ref(),
            paths[0].as_os_str(),
            paths[1].as_os_str(),
        ])
        .ok();
        flip_a_byte_of_the_body(&ws.db(), &victim);

        let verified = ws.run(["verify"]).fails(1);
        assert!(
            verified
                .stdout()
                .starts_with("corrupt victim.bin: part \"victim.bin\" is corrupt on disk")
        );
        assert!(
            verified
                .stdout()
                .ends_with("1 intact (100000 bytes), 1 corrupt\n")
        );
        let json: serde_json::Value =
            serde_json::from_str(&ws.run(["verify", "--json"]).fails(1).stdout()).unwrap();
        assert_eq!(json["corrupt"][0]["name"], "victim.bin");

        let out = ws.path("out");
        let exported = ws.run(["export".as_ref(), out.as_os_str()]).fails(1);
        assert!(
            exported
                .stdout()
                .contains("failed victim.bin: part \"victim.bin\" is corrupt")
        );
        assert!(exported.stdout().ends_with("1 exported, 1 failed\n"));
        assert_eq!(
            std::fs::read(out.join("intact.bin_recebida")).unwrap(),
            intact
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "no partial or temp file"
        );
    }
}

#[test]
fn an_existing_store_keeps_its_backend() {
    let ws = Workspace::new(BackendKind::Fs);
    let file = ws.write("a", b"a");
    ws.run(["import".as_ref(), file.as_os_str()]).ok();
    let wrong = Workspace {
        dir: ws.dir,
        backend: BackendKind::Sled,
    };
    let run = wrong.run(["list"]).fails(1);
    assert!(
        run.stderr().contains("uses the fs backend, not sled"),
        "{}",
        run.stderr()
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .arg("--db")
        .arg(wrong.db())
        .arg("list")
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert!(
        String::from_utf8(listed.stdout)
            .unwrap()
            .starts_with("a\t1\t")
    );
}

#[test]
fn a_store_in_use_is_refused_plainly() {
    let ws = Workspace::new(BackendKind::Sled);
    let held = storage::open_store(&ws.db(), Some(BackendKind::Sled)).unwrap();
    let run = ws.run(["list"]).fails(1);
    let expected = format!("is in use by process {}", std::process::id());
    assert!(run.stderr().contains(&expected), "{}", run.stderr());
    drop(held);
    ws.run(["list"]).ok();
}

#[test]
fn a_directory_that_is_not_a_store_is_left_alone() {
    let ws = Workspace::new(BackendKind::Sled);
    std::fs::create_dir_all(ws.db()).unwrap();
    std::fs::write(ws.db().join("thesis.tex"), b"years of work").unwrap();
    let run = ws.run(["list"]).fails(1);
    assert!(
        run.stderr().contains("is not a p2p-store store"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read_dir(ws.db()).unwrap().count(), 1);
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::new(BackendKind::Sled);
    ws.run(["import"]).fails(2);
    ws.run(["frobnicate"]).fails(2);
    let run = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .arg("--db")
        .arg(ws.db())
        .args(["--backend", "mem", "list"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown backend \"mem\""));
    assert!(!ws.db().exists(), "a usage error creates nothing");
}

/// Only regular files are imported: a FIFO would block forever, and devices and `/proc` files
/// claim sizes that have nothing to do with what reading them gives. Each is refused by name
/// with the reason, and the regular file beside them is stored.
#[test]
fn import_refuses_what_is_not_a_regular_file() {
    let ws = Workspace::new(BackendKind::Sled);
    let fifo = ws.path("pipe");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let plain = ws.write("plain.txt", b"plain");
    let run = ws
        .run([
            "import",
            fifo.to_str().unwrap(),
            "/dev/null",
            "/dev/zero",
            "/proc/self/status",
            plain.to_str().unwrap(),
        ])
        .fails(1);
    let stdout = run.stdout();
    for refused in [
        "rejected pipe: ",
        "rejected null: ",
        "rejected zero: ",
        "rejected status: ",
    ] {
        let line = stdout.lines().find(|line| line.starts_with(refused));
        assert!(
            line.is_some_and(|line| line.contains("not a regular file")),
            "{refused}\n{stdout}"
        );
    }
    assert!(stdout.contains("stored plain.txt\n"), "{stdout}");
    assert!(
        stdout.ends_with("1 stored, 0 already had, 4 rejected\n"),
        "{stdout}"
    );
}

/// `p2p-store list | head`: a reader that goes away ends the command quietly.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let ws = Workspace::new(BackendKind::Sled);
    let files: Vec<PathBuf> = (0..2000)
        .map(|i| ws.write(&format!("f{i:04}"), &[1]))
        .collect();
    let mut import = vec!["import".to_owned()];
    import.extend(files.iter().map(|path| path.to_str().unwrap().to_owned()));
    ws.run(import).ok();
    let mut list = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .arg("--db")
        .arg(ws.db())
        .args(["list", "--all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(list.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(list.stdout.take());
    let output = list.wait_with_output().unwrap();
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every command's `--help` ends with real examples.
#[test]
fn help_ends_with_examples() {
    let ws = Workspace::new(BackendKind::Sled);
    for command in [
        "import",
        "list",
        "export",
        "verify",
        "remove",
        "serve",
        "send",
        "fetch",
        "demo",
        "completions",
    ] {
        let help = ws.run([command, "--help"]).ok().stdout();
        let examples = help.split("Examples:\n").nth(1).unwrap_or("");
        let lines: Vec<&str> = examples.lines().filter(|line| !line.is_empty()).collect();
        assert!(lines.len() >= 2, "{command}:\n{help}");
        assert!(
            lines
                .iter()
                .all(|line| line.trim_start().starts_with("p2p-store ")),
            "{command}:\n{help}"
        );
    }
}

/// A mistyped `--db` is an error for the commands that only read or remove, and creates
/// nothing: not the store, not its parent directories.
#[test]
fn read_commands_on_a_missing_store_create_nothing() {
    let ws = Workspace::new(BackendKind::Sled);
    let typo = ws.path("no/such/peer1.db");
    let out = ws.path("out");
    let typo_arg = typo.to_str().unwrap();
    for args in [
        vec!["list"],
        vec!["verify"],
        vec!["export", out.to_str().unwrap()],
        vec!["remove", "part2.txt"],
        vec!["send", "--to", "127.0.0.1:1"],
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .args(["--db", typo_arg])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("there is no store at"),
            "{args:?}: {stderr}"
        );
        assert!(
            !ws.path("no").exists(),
            "{args:?} created {}",
            typo.display()
        );
    }
}

/// Files that are not entries in the fs backend's `names/` (an editor's backup, a `.DS_Store`,
/// a directory) are left alone with a warning, and the store opens with its parts.
#[test]
fn stray_files_in_names_are_ignored_with_a_warning() {
    let ws = Workspace::new(BackendKind::Fs);
    let part = ws.write("part2.txt", b"hello");
    ws.run(["import", part.to_str().unwrap()]).ok();
    let names = ws.db().join("names");
    std::fs::write(names.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    std::fs::write(names.join("part2.txt~"), b"an editor's backup").unwrap();
    std::fs::create_dir(names.join("a directory")).unwrap();
    let listed = ws.run(["list", "--json"]).ok();
    let names_listed: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names_listed, ["part2.txt"]);
    let warnings = listed.stderr();
    for stray in [".DS_Store", "part2.txt~", "a directory"] {
        assert!(
            warnings.contains(stray),
            "no warning about {stray}: {warnings}"
        );
    }
    assert!(
        names.join(".DS_Store").exists(),
        "a stray file is never deleted"
    );
}

/// Removing a file releases its chunks that no other file lists; a chunk a file lists is
/// kept, with the files that need it named.
#[test]
fn remove_releases_unshared_chunks_and_keeps_needed_ones() {
    let ws = Workspace::new(BackendKind::Sled);
    let shared = random_bytes(40, 2 * 65536);
    let mut big = shared.clone();
    big.extend(random_bytes(41, 3 * 65536));
    let mut small = shared;
    small.extend(random_bytes(42, 65536));
    let big = ws.write("big.bin", &big);
    let small = ws.write("small.bin", &small);
    let import = ["import", "--part-size", "65536"];
    ws.run(
        import
            .iter()
            .copied()
            .chain([big.to_str().unwrap(), small.to_str().unwrap()]),
    )
    .ok();
    let chunks = |ws: &Workspace| -> Vec<String> {
        ws.run(["list", "--all", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["name"].as_str().unwrap().to_owned())
            .filter(|name| name.starts_with("b3-"))
            .collect()
    };
    assert_eq!(
        chunks(&ws).len(),
        6,
        "2 shared, 3 of big's own, 1 of small's own"
    );
    let needed = chunks(&ws)[0].clone();
    let kept = ws.run(["remove", &needed]).fails(1).stdout();
    let expected = format!("kept {needed}: the files ");
    assert!(kept.starts_with(&expected), "{kept}");
    assert!(chunks(&ws).contains(&needed));

    let removed = ws.run(["remove", "big.bin"]).ok().stdout();
    assert_eq!(removed, "removed big.bin and 3 chunks no other file uses\n");
    assert_eq!(chunks(&ws).len(), 3, "small.bin's three chunks stay");
    let verified = ws.run(["verify", "--json"]).ok().json();
    assert_eq!(verified["intact"], 1, "{verified}");
}
