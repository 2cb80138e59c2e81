// make-demo-dump: writes the synthetic activation dump that `make demo` and the tests analyse.
#include "ropekit/cli/cli.hpp"
#include "ropekit/dump/demo_dump_run.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("make-demo-dump",
              "Write ropekit's synthetic activation dump (TransformerLens layout): positional "
              "heads planted from the highest RoPE frequencies (Theorem 5.3), semantic heads with "
              "low-frequency bands, GQA. Deterministic for a given seed and build.");
    tool.with_output();
    DemoDumpCommand command;
    DemoDumpSpec& spec = command.spec;
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
    app.add_option("--dtype", command.dtype, "Stored element type: f16, bf16, f32 or f64")
        ->capture_default_str();
    tool.examples(
        "  make-demo-dump -o demo.h5\n"
        "  make-demo-dump --dtype f16 -o - | freq-norms - -o norms.h5\n");
    return tool.run(argc, argv, [&] { run_make_demo_dump(command, tool.context()); });
}
