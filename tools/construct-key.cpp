// construct-key: keys and heads that attend where you choose (Proposition 3.1, Theorem 5.3).
#include "ropekit/analysis/key_construction_run.hpp"
#include "ropekit/cli/cli.hpp"

using namespace ropekit;

namespace {

void add_query_options(Tool& tool, KeyConstructionCommand& c) {
    auto& app = tool.app();
    auto* file = app.add_option("--query", c.query_file,
                                "Query from FILE:DATASET ([..., d]; --row picks the row, '-' = "
                                "stdin)");
    auto* random = app.add_option("--query-random", c.query_seed, "Gaussian query, this seed");
    auto* ones =
        app.add_flag("--query-ones", c.query_ones, "All-ones query (equal norm in all chunks)");
    file->excludes(random, ones);
    random->excludes(ones);
    tool.require_one_of({file, random, ones},
                        "one of --query FILE:DATASET, --query-random SEED or --query-ones");
    app.add_option("--row", c.row, "Row of the --query dataset (leading axes flattened)")
        ->capture_default_str();
}

void add_options(Tool& tool, KeyConstructionCommand& c) {
    auto& app = tool.app();
    add_query_options(tool, c);
    app.add_option("--head-dim", c.head_dim, "Head dimension d (even)")->capture_default_str();
    app.add_option("--theta", c.theta, "RoPE base")->capture_default_str();
    app.add_option("--layout", c.layout, "Dim layout of the written vectors: half | interleaved")
        ->capture_default_str();
    auto* offset = app.add_option("--offset", c.offset,
                                  "Tokens back where the logit peaks (0 = the query's own "
                                  "position)")
                       ->capture_default_str();
    app.add_option("--tokens", c.tokens,
                   "Positions N: offsets 0..N-1 (default 8192; 1024 with --head)");
    app.add_option("--chunks", c.chunks,
                   "Keep only these frequency chunks of q: all, 1-4, 1,3,9, top:K, bottom:K (1 = "
                   "highest frequency)")
        ->capture_default_str();
    app.add_option("--head", c.head, "Build a head: diagonal | previous | offset:R")
        ->excludes(offset);
    app.add_option("--epsilon", c.epsilon, "--head: attention on the target >= 1 - epsilon")
        ->capture_default_str();
    app.add_option("--scale", c.scale,
                   "--head: scores = q.k/sqrt(d) as models do (sqrt) or q.k as the paper writes "
                   "them (none)")
        ->capture_default_str();
    app.add_flag("--no-pattern", c.no_pattern,
                 "--head: skip hook_pattern/hook_attn_scores ([N, N] each)");
    tool.with_output();
    tool.reads_hdf5();
}

}  // namespace

int main(int argc, char** argv) {
    Tool tool("construct-key",
              "Build a key whose RoPE logit with a given query peaks a chosen number of tokens "
              "back (Proposition 3.1: k = R^r q, chunk by chunk), and write the logit curve over "
              "offsets 0..N-1 with its argmax and margin. With --head, build a whole single-head "
              "layer (Theorem 5.3: diagonal, previous-token or any offset) with the smallest "
              "scale of ||psi|| that gives attention >= 1 - epsilon at every position, written "
              "as a one-layer activation dump.");
    KeyConstructionCommand command;
    add_options(tool, command);
    tool.examples(
        "  construct-key --query-ones --offset 5 -o key.h5\n"
        "  construct-key --query-random 1 --offset 3 --chunks top:8 --tokens 64 -o - | \\\n"
        "      rope-plot -:logit -o k.svg                # 64 offsets: the peak at 3 stands out\n"
        "  construct-key --query-ones --head previous --tokens 1024 --epsilon 0.01 -o head.h5\n"
        "  construct-key --query-ones --head offset:4 --tokens 64 -o - | \\\n"
        "      rope-decay --mode file --input - --query blocks.0.attn.hook_q \\\n"
        "      --key blocks.0.attn.hook_k --head-dim 256 --max-offset 20 -o decay.h5\n");
    return tool.run(argc, argv, [&] { run_construct_key(command, tool.context()); });
}
