//! The notebook runner's process hygiene (scripts/reap.py, scripts/evcxr_kernel.sh): a failed
//! notebook leaves no process behind, and two live kernels never share an evcxr build directory.
//! A stand-in shell script plays the kernel, so these run without evcxr or Jupyter.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audiosae-runner-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} was not written within 20 s", path.display());
}

/// Alive and not a zombie.
fn alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

fn kill(pid: &str) {
    let _ = Command::new("kill").args(["-9", pid]).stderr(std::process::Stdio::null()).status();
}

#[test]
fn reaper_ends_every_process_a_failed_command_left_behind() {
    let dir = scratch("reap");
    // Like a kernel nbconvert gave up on: one child in a session of its own (as jupyter_client
    // starts kernels) and one orphan that ignores SIGTERM (like a busy rustc); then a failure.
    let cmd = format!(
        "setsid bash -c 'echo $$ > {d}/a; exec sleep 300' & \
         ( (trap '' TERM; echo $BASHPID > {d}/b; exec sleep 301) & ) ; \
         while [ ! -s {d}/a ] || [ ! -s {d}/b ]; do sleep 0.02; done; exit 7",
        d = dir.display()
    );
    let status = Command::new("python3")
        .arg(script("reap.py"))
        .args(["--grace", "1", "--", "bash", "-c", &cmd])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7), "the command's exit status is passed on");
    for f in ["a", "b"] {
        let pid = fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
        let left = alive(&pid);
        kill(&pid);
        assert!(!left, "process {pid} ({f}) outlived the reaper");
    }
}

/// Starts the launcher with a stand-in kernel that records its build directory, starts a
/// long-lived child (a compile that outlives its kernel), and sleeps.
fn launch(dir: &Path, slots: &Path, name: &str) -> Child {
    let fake = dir.join("fake-evcxr");
    if !fake.exists() {
        fs::write(
            &fake,
            "#!/usr/bin/env bash\n\
             # argv: --control_file CONNECTION\n\
             sleep 300 & echo $! > \"$2.child\"\n\
             echo \"$EVCXR_TMPDIR\" > \"$2\"\n\
             exec sleep 300\n",
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    }
    Command::new("bash").arg(script("evcxr_kernel.sh")).arg(&fake).arg(slots).arg(dir.join(name)).spawn().unwrap()
}

#[test]
fn concurrent_kernels_never_share_a_build_directory() {
    let dir = scratch("slots");
    let slots = dir.join("evcxr");
    let slot = |i: usize| slots.join(format!("slot-{i}")).display().to_string();
    let mut a = launch(&dir, &slots, "a");
    assert_eq!(wait_for_file(&dir.join("a")), slot(0));
    let mut b = launch(&dir, &slots, "b");
    assert_eq!(wait_for_file(&dir.join("b")), slot(1), "a second live kernel gets its own directory");

    // Kernel a dies but its compile goes on: slot-0 stays taken until that ends too.
    a.kill().unwrap();
    a.wait().unwrap();
    let mut c = launch(&dir, &slots, "c");
    assert_eq!(wait_for_file(&dir.join("c")), slot(2), "an orphaned compile keeps its directory");
    kill(&wait_for_file(&dir.join("a.child")));

    // Everything of kernel a is gone: the next kernel reuses slot-0 and its warm build.
    let mut d = launch(&dir, &slots, "d");
    assert_eq!(wait_for_file(&dir.join("d")), slot(0));
    for (child, name) in [(&mut b, "b"), (&mut c, "c"), (&mut d, "d")] {
        kill(&wait_for_file(&dir.join(format!("{name}.child"))));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
