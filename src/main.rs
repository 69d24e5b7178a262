fn main() -> std::process::ExitCode {
    dtaas::cli::main()
}
