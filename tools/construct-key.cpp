// construct-key: keys and heads that attend where you choose (Proposition 3.1, Theorem 5.3).
#include <optional>

#include "ropekit/analysis/key_construction.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("construct-key",
              "Build a key whose RoPE logit with a given query peaks a chosen number of tokens "
              "back (Proposition 3.1: k = R^r q, chunk by chunk), and write the logit curve over "
              "offsets 0..N-1 with its argmax and margin. With --head, build a whole single-head "
              "layer (Theorem 5.3: diagonal, previous-token or any offset) with the smallest "
              "scale of ||psi|| that gives attention >= 1 - epsilon at every position, written "
              "as a one-layer activation dump.");
    std::string query_spec, chunks = "all", head_spec, layout = "half", scale = "sqrt";
    std::uint64_t random_seed = 0;
    bool ones = false, no_pattern = false;
    std::size_t head_dim = 256, tokens = 0, row = 0;
    double theta = 1e4, epsilon = 0.01;
    std::int64_t offset = 1;
    auto& app = tool.app();
    auto* q_file = app.add_option("--query", query_spec,
                                  "Query from FILE:DATASET ([..., d]; "
                                  "--row picks the row, '-' = stdin)");
    auto* q_random = app.add_option("--query-random", random_seed, "Gaussian query, this seed");
    auto* q_ones = app.add_flag("--query-ones", ones, "All-ones query (equal norm in all chunks)");
    q_file->excludes(q_random, q_ones);
    q_random->excludes(q_ones);
    app.add_option("--row", row, "Row of the --query dataset (leading axes flattened)")
        ->capture_default_str();
    app.add_option("--head-dim", head_dim, "Head dimension d (even)")->capture_default_str();
    app.add_option("--theta", theta, "RoPE base")->capture_default_str();
    app.add_option("--layout", layout, "Dim layout of the written vectors: half | interleaved")
        ->capture_default_str();
    auto* offset_opt = app.add_option("--offset", offset,
                                      "Tokens back where the logit peaks "
                                      "(0 = the query's own position)")
                           ->capture_default_str();
    app.add_option("--tokens", tokens,
                   "Positions N: offsets 0..N-1 (default 8192; 1024 with "
                   "--head)");
    app.add_option("--chunks", chunks,
                   "Keep only these frequency chunks of q: all, 1-4, 1,3,9, "
                   "top:K, bottom:K (1 = highest frequency)")
        ->capture_default_str();
    auto* head_opt = app.add_option("--head", head_spec,
                                    "Build a head: diagonal | previous | "
                                    "offset:R");
    head_opt->excludes(offset_opt);
    app.add_option("--epsilon", epsilon, "--head: attention on the target >= 1 - epsilon")
        ->capture_default_str();
    app.add_option("--scale", scale,
                   "--head: scores = q.k/sqrt(d) as models do (sqrt) or q.k as "
                   "the paper writes them (none)")
        ->check(CLI::IsMember({"sqrt", "none"}))
        ->capture_default_str();
    app.add_flag("--no-pattern", no_pattern,
                 "--head: skip hook_pattern/hook_attn_scores "
                 "([N, N] each)");
    tool.with_output();
    tool.examples(
        "  construct-key --query-ones --offset 5 -o key.h5\n"
        "  construct-key --query-random 1 --offset 3 --chunks top:8 -o - | rope-plot -:logit -o "
        "k.svg\n"
        "  construct-key --query-ones --head previous --tokens 1024 --epsilon 0.01 -o head.h5\n"
        "  construct-key --query-ones --head offset:4 --tokens 64 -o - | \\\n"
        "      rope-decay --mode file --input - --query blocks.0.attn.hook_q \\\n"
        "      --key blocks.0.attn.hook_k --head-dim 256 --max-offset 20 -o decay.h5\n");
    return tool.run(argc, argv, [&] {
        if (q_file->count() + q_random->count() + q_ones->count() != 1) {
            throw usage_error(
                "give one of --query FILE:DATASET, --query-random SEED, --query-ones");
        }
        const Schedule s = make_schedule(head_dim, theta, parse_layout(layout));
        QueryChoice q =
            choose_query(head_dim, q_random->count() ? std::optional(random_seed) : std::nullopt,
                         query_spec, row);
        keep_chunks(q.values, s, parse_chunk_spec(chunks, s.frequency_count()));
        auto out = H5Output::create(tool.output(), tool.write_options({q.file}));
        if (!head_spec.empty()) {
            HeadOptions options;
            options.head = parse_head_spec(head_spec);
            options.tokens = tokens ? tokens : 1024;
            options.epsilon = epsilon;
            options.model_scale = scale == "sqrt";
            options.write_pattern = !no_pattern;
            ConstructedHead head = build_head(q.values, s, options);
            const ConstructedHeadResult& r = head.result;
            tool.note(
                "smallest scale {:.6g} (paper's sufficient bound {:.6g}); stored ||psi||^2 "
                "= {:.6g} with attn_scale {:.6g}",
                r.scale.scale_min, r.scale.scale_bound, r.psi_norm2, r.attn_scale);
            write_head_dump(out, head, s, theta, options);
            out.set_attr("/", "chunks", chunks);
            out.set_attr("/", "query_source", q.source);
            tool.note("min attention on the target {:.6f} (>= {:.6f})", r.min_alpha, 1 - epsilon);
        } else {
            const auto k = construct_key(q.values, s, offset, tokens ? tokens : 8192);
            write_key_construction(out, k, s, theta, chunks, q.source);
            tool.note("argmax offset {}, margin {:.6g}", k.offsets[k.peak.argmax], k.peak.margin);
        }
        out.commit(tool.name(), tool.command_line(), q.history);
    });
}
