fn main() {
    std::process::exit(leaktrace::cli::main());
}
