//! Compiles the workspace's proto/seckill.proto with protox (pure Rust: no `protoc` needed) and generates the
//! tonic services and prost messages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/seckill.proto");
    let fds = protox::compile(["seckill.proto"], ["../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
