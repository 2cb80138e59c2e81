#pragma once
// Turns one dataset of an HDF5 output into a figure, reading everything a reader needs from the
// file itself: axis names from dimension labels, units from the "units" attribute, x values
// from a sibling coordinate dataset named like the axis (e.g. `offset` beside `activation`).
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

enum class PlotKind { automatic, heatmap, lines };
PlotKind parse_plot_kind(const std::string& name);  // "auto" | "heatmap" | "lines"

struct DatasetPlotOptions {
    PlotKind kind = PlotKind::automatic;  // 1-D: lines, 2-D: heatmap
    std::string title;                    // "" = "file: dataset"
    std::optional<std::size_t> index;     // 3-D datasets: plot the slice at this axis-0 index
    bool transpose = false;               // heatmap: swap the axes after the automatic choice
    bool log = false;                     // heatmap: log colour scale; lines: log x axis
    bool from_zero = false;               // the value scale (y axis, colour bar) includes 0
};

// "FILE:DATASET" -> {FILE, DATASET}; "FILE" -> {FILE, ""}. A path that exists as given is never
// split (so "a:b.h5" works when that file exists).
std::pair<std::string, std::string> split_file_dataset(const std::string& argument);

// The dataset to plot when none was named: the only 1-D to 3-D numeric dataset that is not the
// coordinate of another. Throws usage_error listing the candidates when there are several.
std::string default_plot_dataset(const H5Input& in);

// The SVG of `dataset`. Throws data_error for a missing or empty dataset, usage_error for a
// rank the options cannot plot (3-D without --index, 4-D and up, 0-D).
std::string plot_dataset(const H5Input& in, const std::string& dataset,
                         const DatasetPlotOptions& options);

}  // namespace ropekit
