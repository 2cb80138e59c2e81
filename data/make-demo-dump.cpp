// make-demo-dump: writes the synthetic activation dump that `make demo` and the tests analyse.
#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/dump/demo_dump.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("make-demo-dump",
              "Write ropekit's synthetic activation dump (TransformerLens layout): positional "
              "heads planted from the highest RoPE frequencies (Theorem 5.3), semantic heads with "
              "low-frequency bands, GQA. Deterministic for a given seed and build.");
    tool.with_output();
    DemoDumpSpec spec;
    std::string dtype = "f32";
    auto& app = tool.app();
    app.add_option("--layers", spec.layers, "Layers (>= 3)")->capture_default_str();
    app.add_option("--heads", spec.heads, "Query heads (>= 4)")->capture_default_str();
    app.add_option("--kv-heads", spec.kv_heads, "Key/value heads (divides --heads)")
        ->capture_default_str();
    app.add_option("--head-dim", spec.head_dim, "Dims per head (even, >= 16)")
        ->capture_default_str();
    app.add_option("--batch", spec.batch, "Sequences")->capture_default_str();
    app.add_option("--tokens", spec.tokens, "Positions per sequence")->capture_default_str();
    app.add_option("--theta", spec.theta, "RoPE base")->capture_default_str();
    app.add_option("--seed", spec.seed, "Random seed")->capture_default_str();
    app.add_option("--dtype", dtype, "Stored element type")
        ->check(CLI::IsMember({"f16", "bf16", "f32", "f64"}))
        ->capture_default_str();
    tool.examples(
        "  make-demo-dump -o demo.h5\n"
        "  make-demo-dump --dtype f16 -o - | freq-norms - -o norms.h5\n");
    return tool.run(argc, argv, [&] {
        spec.stored = dtype == "f16"    ? DType::f16
                      : dtype == "bf16" ? DType::bf16
                      : dtype == "f64"  ? DType::f64
                                        : DType::f32;
        H5Output out = H5Output::create(tool.output(), tool.write_options({}));
        write_demo_dump(out, spec);
        out.commit(tool.name(), tool.command_line());
    });
}
