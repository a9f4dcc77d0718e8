fn main() -> std::process::ExitCode {
    audiosae::cli::main()
}
