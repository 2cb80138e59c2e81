// rope-decay: does RoPE decay attention with distance? (paper Figure 2, Figure 9, Prop. 3.2)
#include <optional>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/rope/logit_curve.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-decay",
              "Activation q^T R^(-o) k / d as a function of the offset o (how many tokens back the "
              "key sits), for all-ones vectors (closed form, decays: paper Figure 2a), Gaussian "
              "vectors (no decay in expectation: Proposition 3.2, Figures 2b and 9) or real "
              "queries and keys from an HDF5 file. --check tests Proposition 3.2 statistically "
              "and exits 1 when the curve decays.");
    std::string mode_name = "ones", offsets_spec, input, query, key, layout_name_opt, plot;
    std::size_t head_dim = 256, samples = 0;
    double theta = 1e4, p = 1.0, alpha = 1e-3;
    std::int64_t max_offset = 5000;
    std::uint64_t seed = 0;
    bool check = false;
    auto& app = tool.app();
    app.add_option("--mode", mode_name, "ones | gaussian | repeated-gaussian | file")
        ->capture_default_str();
    app.add_option("--head-dim", head_dim, "Head dimension d (even)")->capture_default_str();
    auto* theta_opt = app.add_option("--theta", theta,
                                     "RoPE base (file mode: default from the "
                                     "file's rope_theta attribute)")
                          ->capture_default_str();
    auto* p_opt = app.add_option("--p", p,
                                 "p-RoPE: keep the highest floor(p*d/2) frequencies, "
                                 "zero the rest (1 = RoPE, 0 = NoPE)")
                      ->capture_default_str();
    app.add_option("--max-offset", max_offset, "Offsets 0..N (tokens)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}))
        ->capture_default_str();
    app.add_option("--offsets", offsets_spec, "Offsets instead: 0,1,10 or 0-5000:10 (tokens)");
    app.add_option("--samples", samples,
                   "Pairs to average: gaussian default 10000; file default "
                   "all rows");
    app.add_option("--seed", seed, "Random seed (gaussian modes)")->capture_default_str();
    app.add_option("--input", input, "file mode: HDF5 file with queries and keys ('-' = stdin)");
    app.add_option("--query", query,
                   "file mode: query dataset [..., d], pre-RoPE (e.g. "
                   "blocks.0.attn.hook_q)");
    app.add_option("--key", key,
                   "file mode: key dataset, same shape; row r pairs with query row r");
    app.add_option("--layout", layout_name_opt,
                   "file mode: half | interleaved (default: the "
                   "file's rope_layout attribute, else half)");
    app.add_option("--plot", plot, "Also write a Figure-2-style SVG (mean +- stderr band)");
    app.add_flag("--check", check, "Test Proposition 3.2 (no decay); exit 1 if it fails");
    app.add_option("--alpha", alpha, "--check: family-wise false-alarm rate")
        ->capture_default_str();
    tool.with_output();
    tool.reads_hdf5();
    tool.examples(
        "  rope-decay -o ones.h5                                  # Figure 2a, d=256, theta=1e4\n"
        "  rope-decay --mode gaussian --samples 10000 --check -o gauss.h5\n"
        "  rope-decay --mode file --input dump.h5 --query blocks.0.attn.hook_q \\\n"
        "      --key blocks.0.attn.hook_k --max-offset 2000 -o real.h5\n"
        "  rope-decay --mode repeated-gaussian -o - | rope-plot -:activation -o fig9.svg\n");
    return tool.run(argc, argv, [&] {
        if (!plot.empty()) check_output_path(plot, tool.force(), {input});  // refuse before work
        DecayRequest request;
        request.params = {parse_decay_mode(mode_name), head_dim, theta, p, seed, ""};
        request.offsets =
            offsets_spec.empty() ? offset_range(max_offset + 1) : parse_offsets(offsets_spec);
        request.samples = samples;
        request.query = query;
        request.key = key;
        std::optional<H5Input> in;
        if (!input.empty()) {
            in = H5Input::open(input);
            request.input = &*in;
            take_file_defaults(request.params, *in, theta_opt->count() > 0, p_opt->count() > 0,
                               layout_name_opt);
        }
        const DecayCurve curve = compute_decay(request, [&](std::size_t done, std::size_t total) {
            if (done == total || done % 8192 == 0) tool.note("{} / {} pairs", done, total);
        });
        std::optional<DecayCheck> result;
        if (check) result = check_no_decay(curve, alpha);
        auto out = H5Output::create(tool.output(), tool.write_options({input}));
        write_decay(out, curve, request.params);
        if (result) write_decay_check(out, *result);
        out.commit(tool.name(), tool.command_line(), in ? in->history() : "");
        if (!plot.empty()) {
            write_text_output(plot, decay_plot_svg(curve, request.params), tool.force(), {input});
        }
        if (result && !result->passed) {
            throw Error(ExitCode::data,
                        "Proposition 3.2 check FAILED: " + describe_decay_check(*result));
        }
        if (result) tool.note("Proposition 3.2 check passed: {}", describe_decay_check(*result));
    });
}
