// rope-decay: does RoPE decay attention with distance? (paper Figure 2, Figure 9, Prop. 3.2)
#include "ropekit/analysis/decay_run.hpp"
#include "ropekit/cli/cli.hpp"
#ifdef ROPEKIT_MPI
#include "ropekit/mpi/mpi_session.hpp"
#endif

using namespace ropekit;

namespace {

void add_options(Tool& tool, DecayCommand& c) {
    auto& app = tool.app();
    app.add_option("--mode", c.mode, "ones | gaussian | repeated-gaussian | file")
        ->capture_default_str();
    app.add_option("--head-dim", c.head_dim,
                   "Head dimension d (even; default 256; file mode: the query's last axis)");
    app.add_option("--theta", c.theta,
                   "RoPE base (default 10000; file mode: the frequencies the dump recorded "
                   "(layer_rope_inv_freq, rope_inv_freq), else its rope_theta; --theta "
                   "overrides them)");
    app.add_option("--p", c.p,
                   "p-RoPE: keep the highest floor(p*d/2) frequencies, zero the rest (default "
                   "1 = RoPE; 0 = NoPE; file mode: the file's p attribute, or 1 with recorded "
                   "frequencies, which include it)");
    app.add_option("--max-offset", c.max_offset, "Offsets 0..N (tokens)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}))
        ->capture_default_str();
    app.add_option("--offsets", c.offsets, "Offsets instead: 0,1,10 or 0-5000:10 (tokens)");
    app.add_option("--samples", c.samples,
                   "Pairs to average: gaussian default 10000; file default all rows");
    app.add_option("--seed", c.seed, "Random seed (gaussian modes)")->capture_default_str();
    app.add_option("--first-sample", c.first_sample,
                   "gaussian mode: average pairs N .. N+samples-1 of the seed's sequence, so that "
                   "runs over disjoint ranges merge (rope-merge) into one run over their union")
        ->capture_default_str();
    app.add_option("--input", c.input, "file mode: HDF5 file with queries and keys ('-' = stdin)");
    app.add_option("--query", c.query,
                   "file mode: query dataset [..., d], pre-RoPE (e.g. blocks.0.attn.hook_q)");
    app.add_option("--key", c.key,
                   "file mode: key dataset, same shape; row r pairs with query row r");
    app.add_option("--layer", c.layer,
                   "file mode: the dump layer whose recorded RoPE schedule (layer_rope_inv_freq) "
                   "applies (default: L of the query's blocks.L. name)");
    app.add_option("--layout", c.layout,
                   "file mode: half | interleaved (default: the file's rope_layout attribute, "
                   "else half)");
    app.add_option("--plot", c.plot, "Also write a Figure-2-style SVG (mean +- stderr band)");
    app.add_flag("--check", c.check, "Test Proposition 3.2 (no decay); exit 3 if the curve decays");
    app.add_option("--alpha", c.alpha, "--check: family-wise false-alarm rate")
        ->capture_default_str();
    tool.with_output();
    tool.reads_hdf5().reads_bf16_bits();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef ROPEKIT_MPI
    MpiSession mpi(argc, argv);  // before the tool, so MPI ends after it
#endif
    Tool tool("rope-decay",
              "Activation q^T R^(-o) k / d as a function of the offset o (how many tokens back the "
              "key sits), for all-ones vectors (closed form, decays: paper Figure 2a), Gaussian "
              "vectors (no decay in expectation: Proposition 3.2, Figures 2b and 9) or real "
              "queries and keys from an HDF5 file. --check tests Proposition 3.2 statistically "
              "and exits 3 when the curve decays (1 is bad input, 2 a bad command line).");
    DecayCommand command;
    add_options(tool, command);
    tool.examples(
        "  rope-decay -o ones.h5                                  # Figure 2a, d=256, theta=1e4\n"
        "  rope-decay --mode gaussian --samples 10000 --check -o gauss.h5\n"
        "  rope-decay --mode file --input dump.h5 --query blocks.0.attn.hook_q \\\n"
        "      --key blocks.0.attn.hook_k --max-offset 2000 -o real.h5\n"
        "  rope-decay --mode gaussian --samples 5000 --first-sample 5000 -o part2.h5\n"
        "  rope-decay --mode repeated-gaussian -o - | rope-plot -:activation -o fig9.svg\n");
#ifdef ROPEKIT_MPI
    return tool.run(argc, argv, [&] {
        mpi.run([&](const WorkShare& share) { run_rope_decay(command, tool.context(), share); });
    });
#else
    return tool.run(argc, argv, [&] { run_rope_decay(command, tool.context()); });
#endif
}
