// rope-merge: outputs over parts of a dump combined into the output over the whole.
#include "ropekit/cli/cli.hpp"
#include "ropekit/merge/merge_run.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-merge",
              "Combine outputs of freq-norms, find-positional-heads or rope-decay (gaussian and "
              "file modes) made with the same options over parts of one dump (shards, or "
              "sequence ranges) or of one sample range (rope-decay --first-sample) into the "
              "output over the whole, from the sufficient statistics every such output stores "
              "(sums, minima, counts). The result equals a run over the union up to rounding "
              "(1e-12 relative; docs/tools/rope-merge.md); outputs of different tools or options "
              "are refused by name.");
    MergeCommand command;
    tool.require(tool.app().add_option("OUTPUTS", command.inputs,
                                       "Outputs of one tool, same options (HDF5)"));
    tool.with_output();
    tool.single_threaded("it adds statistics of at most a few megabytes");
    tool.examples(
        "  freq-norms shard-0.h5 -o n0.h5; freq-norms shard-1.h5 -o n1.h5\n"
        "  rope-merge n0.h5 n1.h5 -o norms.h5        # = freq-norms shard-0.h5 shard-1.h5\n"
        "  rope-decay --mode gaussian --samples 5000 -o g0.h5 -q && \\\n"
        "    rope-decay --mode gaussian --samples 5000 --first-sample 5000 -o g1.h5 -q && \\\n"
        "    rope-merge g0.h5 g1.h5 -o g.h5       # = rope-decay --mode gaussian --samples 10000\n"
        "  rope-merge n0.h5 n1.h5 -o - | rope-plot -:layer_q_norms -o fig3.svg\n");
    return tool.run(argc, argv, [&] { run_merge(command, tool.context()); });
}
