// find-positional-heads: heads that attend by position alone (paper Definition 5.1, Figure 5).
#include "ropekit/analysis/positional_heads_run.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/dump_options.hpp"
#ifdef ROPEKIT_MPI
#include "ropekit/mpi/mpi_session.hpp"
#endif

using namespace ropekit;

namespace {

void add_options(Tool& tool, PositionalHeadsCommand& c) {
    auto& app = tool.app();
    tool.require(
        app.add_option("DUMP", c.inputs,
                       "Activation dump (HDF5, '-' = stdin; docs/formats.md): several files, or "
                       "@LIST (a file of paths), are the shards of one dump, concatenated along "
                       "batch"));
    tool.with_optional_output();
    tool.reads_hdf5().reads_bf16_bits();
    app.add_option("--from", c.from,
                   "pattern: read hook_pattern; qk: compute causal softmax attention from "
                   "hook_rot_q/hook_rot_k (or hook_q/hook_k rotated with the dump's schedule); "
                   "auto: pattern when the dump has patterns, else qk (said on stderr)")
        ->capture_default_str();
    app.add_option("--epsilon", c.options.epsilon,
                   "Positional when the mass is >= 1 - epsilon on every sequence")
        ->capture_default_str();
    app.add_option("--max-offset", c.options.max_offset, "Search offsets 0..K (tokens back)")
        ->capture_default_str();
    app.add_flag("--exclude-bos", c.options.exclude_bos,
                 "Ignore attention to position 0 (masses renormalised over the other keys; "
                 "TransformerLens's exclude_bos for prev_mul/prev_abs)");
    app.add_flag("--exclude-current-token", c.options.exclude_current_token,
                 "TransformerLens scores only: ignore the diagonal");
    app.add_option("--scale", c.scale,
                   "qk: logits = scale * q.k; auto = the dump's attn_scale attribute (rope-dump "
                   "and construct-key write it), else sqrt; sqrt = 1/sqrt(d_head) as models "
                   "do; none = 1, the paper's convention")
        ->check(CLI::IsMember({"auto", "sqrt", "none"}))
        ->capture_default_str();
    app.add_option("--format", c.format, "Table on stdout: tsv or json")->capture_default_str();
    app.add_option("--layers", c.layers, "Layers to read: all, 3, 0-3,7, -1 (last)")
        ->capture_default_str();
    app.add_option(
        "--plot", c.plot,
        "Write PREFIX-mass.svg (mass per layer and head) and PREFIX-L{l}H{h}.svg "
        "(Figure 5: the first 48 tokens of sequence 0's pattern) for each positional head");
    add_dump_options(app, c.dump);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef ROPEKIT_MPI
    MpiSession mpi(argc, argv);  // before the tool, so MPI ends after it
#endif
    Tool tool(
        "find-positional-heads",
        "Find the heads of an activation dump that attend by position alone (Definition "
        "5.1 of the RoPE paper): per head, the offset r whose attention mass A[i, i-r] is "
        "largest (0 = diagonal, 1 = previous token), that mass averaged over queries and "
        "sequences and its minimum over sequences, and 'positional' when the minimum is at "
        "least 1 - epsilon. Also TransformerLens's previous_token_head scores (mul, abs) and, "
        "when queries and keys are in the dump, the share of the logit at that offset carried "
        "by the highest quarter of frequencies. Prints a table; -o writes the same as HDF5.");
    PositionalHeadsCommand command;
    add_options(tool, command);
    tool.examples(
        "  find-positional-heads dump.h5                          # TSV table on stdout\n"
        "  find-positional-heads dump.h5 --from qk --scale none --epsilon 0.01 -o heads.h5\n"
        "  find-positional-heads dump.h5 --format json | jq '.[] | select(.positional)'\n"
        "  make-demo-dump -o - | find-positional-heads - --plot heads | awk '$6 == 1'\n");
#ifdef ROPEKIT_MPI
    return tool.run(argc, argv, [&] {
        mpi.run([&](const WorkShare& share) {
            run_find_positional_heads(command, tool.context(), share);
        });
    });
#else
    return tool.run(argc, argv, [&] { run_find_positional_heads(command, tool.context()); });
#endif
}
