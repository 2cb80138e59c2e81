// freq-norms: which RoPE frequencies each head uses (paper Section 4, Figures 3 and 4).
#include "ropekit/analysis/freq_norms_run.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/dump_options.hpp"
#ifdef ROPEKIT_MPI
#include "ropekit/mpi/mpi_session.hpp"
#endif

using namespace ropekit;

namespace {

void add_options(Tool& tool, FreqNormsCommand& c) {
    auto& app = tool.app();
    tool.require(
        app.add_option("DUMP", c.inputs,
                       "Activation dump (HDF5, '-' = stdin; docs/formats.md): several files, or "
                       "@LIST (a file of paths), are the shards of one dump, concatenated along "
                       "batch"));
    tool.with_optional_output();
    tool.reads_hdf5().reads_bf16_bits();
    app.get_option("--threads")
        ->description(
            "Threads reading (layer, q/k) datasets at once (0 = all cores): contiguous datasets, "
            "read in place, only; the result is the same at any count");
    app.add_option("--tensor", c.tensor, "q | k | both")->capture_default_str();
    app.add_flag("--exclude-bos", c.options.exclude_bos,
                 "Leave out position 0 of every sequence (its BOS vectors are outliers)");
    app.add_option("--layers", c.layers, "Layers to read: all, 3, 0-3,7, -1 (last)")
        ->capture_default_str();
    app.add_option("--band-ratio", c.options.band_ratio,
                   "A lower-half chunk is a 'band' when its norm is at least this many times the "
                   "median lower-half norm of both its layer and its head")
        ->capture_default_str();
    app.add_option("--plot", c.plot,
                   "Write SVG heatmaps PREFIX-{q,k}-layers.svg (Figure 3) and "
                   "PREFIX-{q,k}-layer{L}.svg (Figure 4) with frequency on y, highest at the top");
    add_dump_options(app, c.dump);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef ROPEKIT_MPI
    MpiSession mpi(argc, argv);  // before the tool, so MPI ends after it
#endif
    Tool tool("freq-norms",
              "Mean 2-norm of every 2-D RoPE chunk of the queries and keys of an activation dump, "
              "over batch and positions, per layer and head (frequency index 0 = highest). By "
              "Cauchy-Schwarz these norms bound how much each frequency can contribute to a "
              "logit: the paper's Figures 3 and 4. Prints per head the share of norm in the "
              "highest quarter of frequencies and its low-frequency 'bands'. Reads the dump "
              "one layer and one sequence at a time.");
    FreqNormsCommand command;
    add_options(tool, command);
    tool.examples(
        "  freq-norms dump.h5 -o norms.h5 --plot norms          # Figures 3 and 4 as SVG\n"
        "  freq-norms dump.h5 --tensor q --layers 0,-1 --exclude-bos -o q.h5\n"
        "  freq-norms cache.h5 --name q=model.layers.{layer}.q --axes pos,head,dim --tensor q -o "
        "n.h5\n"
        "  make-demo-dump -o - | freq-norms - -o - | rope-plot -:layer_q_norms -o fig3.svg\n");
#ifdef ROPEKIT_MPI
    return tool.run(argc, argv, [&] {
        mpi.run([&](const WorkShare& share) { run_freq_norms(command, tool.context(), share); });
    });
#else
    return tool.run(argc, argv, [&] { run_freq_norms(command, tool.context()); });
#endif
}
