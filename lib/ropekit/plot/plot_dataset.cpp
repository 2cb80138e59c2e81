#include "ropekit/plot/plot_dataset.hpp"

#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/plot/svg_plot.hpp"

namespace ropekit {
namespace {

Tensor<double> read_numeric(const H5Input& in, const std::string& dataset) {
    if (!in.is_integer(dataset)) return in.read_double(dataset);
    Tensor<std::int64_t> ints = in.read_int64(dataset);
    Tensor<double> t(ints.shape);
    std::transform(ints.data.begin(), ints.data.end(), t.data.begin(),
                   [](std::int64_t v) { return static_cast<double>(v); });
    return t;
}

std::string parent_group(const std::string& dataset) {
    auto slash = dataset.rfind('/');
    return slash == std::string::npos ? "" : dataset.substr(0, slash + 1);
}

// Shape of any dataset we could plot, or nullopt (strings, compound types...).
std::optional<Shape> numeric_shape(const H5Input& in, const std::string& dataset) {
    try {
        if (in.is_integer(dataset)) return in.read_int64(dataset).shape;
        return in.info(dataset).shape;
    } catch (const Error&) {
        return std::nullopt;
    }
}

// A 1-D dataset named like `axis` beside `dataset` (or at the root) with `length` values.
std::optional<std::string> coordinate_of(const H5Input& in, const std::string& dataset,
                                         const std::string& axis, std::size_t length) {
    if (axis.empty()) return std::nullopt;
    for (const std::string& candidate : {parent_group(dataset) + axis, axis}) {
        if (candidate == dataset || !in.has(candidate)) continue;
        auto shape = numeric_shape(in, candidate);
        if (shape && shape->size() == 1 && (*shape)[0] == length) return candidate;
    }
    return std::nullopt;
}

struct Axis {
    std::string name;                           // dimension label, or "axis N"
    std::string units;                          // of the coordinate dataset
    std::optional<std::vector<double>> values;  // from the coordinate dataset
    std::string label() const { return units.empty() ? name : name + " [" + units + "]"; }
};

Axis describe_axis(const H5Input& in, const std::string& dataset, const std::string& label,
                   std::size_t axis_number, std::size_t length) {
    Axis a;
    a.name = label.empty() ? fmt::format("axis {}", axis_number) : label;
    if (auto coord = coordinate_of(in, dataset, label, length)) {
        a.values = read_numeric(in, *coord).data;
        a.units = in.attr_string(*coord, "units").value_or("");
    }
    return a;
}

std::vector<std::string> tick_labels(const Axis& a) {
    std::vector<std::string> out;
    if (a.values) {
        for (double v : *a.values) out.push_back(fmt::format("{:.4g}", v));
    }
    return out;
}

bool is_frequency_axis(const std::string& name) {
    return name == "freq" || name == "frequency" || name == "frequency_index";
}

// A dataset ready to draw: its values (a 3-D one already sliced by --index) and their axes.
struct PlotData {
    std::string dataset;
    Tensor<double> data;
    std::vector<Axis> axes;  // one per dimension of data
    std::string units;       // of the values
    std::string title;
    std::string value_name() const { return dataset.substr(dataset.rfind('/') + 1); }
};

std::string axis_0_name(const std::vector<std::string>& labels) {
    return labels[0].empty() ? "axis 0" : labels[0];
}

// A 3-D dataset becomes its 2-D slice at --index (titled so); --index on any other rank is a
// usage error. Returns how many leading axes were sliced away.
std::size_t slice_at_index(const H5Input& in, const std::vector<std::string>& labels,
                           const DatasetPlotOptions& options, PlotData& d) {
    Tensor<double>& data = d.data;
    if (data.rank() != 3) {
        if (options.index) {
            throw usage_error("--index applies to 3-D datasets only; " + d.dataset + " is " +
                              std::to_string(data.rank()) + "-D");
        }
        return 0;
    }
    if (!options.index) {
        throw usage_error(
            fmt::format("{}: {} is 3-D {}; pass --index I to plot the 2-D slice at {} = I",
                        in.name(), d.dataset, shape_string(data.shape), axis_0_name(labels)));
    }
    if (*options.index >= data.shape[0]) {
        throw usage_error(fmt::format("--index {} is past the last {} ({})", *options.index,
                                      labels[0].empty() ? "index" : labels[0], data.shape[0] - 1));
    }
    std::size_t slice = data.shape[1] * data.shape[2];
    Tensor<double> sliced({data.shape[1], data.shape[2]});
    std::copy_n(data.data.begin() + static_cast<std::ptrdiff_t>(*options.index * slice), slice,
                sliced.data.begin());
    if (options.title.empty()) {
        d.title = fmt::format("{}[{} = {}] ({})", d.dataset, axis_0_name(labels), *options.index,
                              in.name());
    }
    data = std::move(sliced);
    return 1;
}

PlotData read_plot_data(const H5Input& in, const std::string& dataset,
                        const DatasetPlotOptions& options) {
    PlotData d;
    d.dataset = dataset;
    d.data = read_numeric(in, dataset);
    std::vector<std::string> labels = in.axes(dataset);
    d.units = in.attr_string(dataset, "units").value_or("");
    if (d.data.size() == 0) throw data_error(in.name(), dataset, "is empty, nothing to plot");
    d.title = options.title.empty() ? dataset + " (" + in.name() + ")" : options.title;
    const std::size_t first_axis = slice_at_index(in, labels, options, d);
    const Tensor<double>& data = d.data;
    if (data.rank() == 0 || data.rank() > 2) {
        throw usage_error(
            fmt::format("{}: {} is {}-D {}; rope-plot draws 1-D, 2-D and (with "
                        "--index) 3-D datasets",
                        in.name(), dataset, data.rank(), shape_string(data.shape)));
    }
    for (std::size_t i = 0; i < data.rank(); ++i) {
        d.axes.push_back(
            describe_axis(in, dataset, labels[first_axis + i], first_axis + i, data.shape[i]));
    }
    return d;
}

// 2-D: rows x columns, frequency on the y axis (index 0, the highest, at the top, as in the
// paper) unless --transpose; 1-D: one row.
Heatmap dataset_heatmap(const PlotData& d, const DatasetPlotOptions& options) {
    const Tensor<double>& data = d.data;
    Heatmap h;
    h.title = d.title;
    h.color_label = d.value_name();
    h.color_units = d.units;
    h.log_color = options.log;
    if (options.from_zero && !options.log) h.color_min = 0;
    std::size_t rows = data.rank() == 2 ? data.shape[0] : 1;
    std::size_t cols = data.rank() == 2 ? data.shape[1] : data.shape[0];
    Axis row_axis = data.rank() == 2 ? d.axes[0] : Axis{"", "", std::nullopt};
    Axis col_axis = data.rank() == 2 ? d.axes[1] : d.axes[0];
    bool swap =
        data.rank() == 2 && is_frequency_axis(col_axis.name) && !is_frequency_axis(row_axis.name);
    if (options.transpose) swap = !swap;
    h.values.resize(rows * cols);
    if (swap) {
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t c = 0; c < cols; ++c) h.values[c * rows + r] = data.data[r * cols + c];
        std::swap(rows, cols);
        std::swap(row_axis, col_axis);
    } else {
        h.values = data.data;
    }
    h.rows = rows;
    h.cols = cols;
    h.x_label = col_axis.label();
    h.y_label = row_axis.label();
    h.x_tick_labels = tick_labels(col_axis);
    h.y_tick_labels = tick_labels(row_axis);
    return h;
}

// One line per row (at most 24) over the last axis, named by the first axis's values.
LinePlot dataset_lines(const PlotData& d, const DatasetPlotOptions& options) {
    const Tensor<double>& data = d.data;
    LinePlot p;
    p.title = d.title;
    p.log_x = options.log;
    p.y_from_zero = options.from_zero;
    p.y_label = d.value_name();
    p.y_units = d.units;
    const Axis& x_axis = d.axes.back();
    p.x_label = x_axis.name;
    p.x_units = x_axis.units;
    std::size_t n = data.shape.back(), series = data.rank() == 2 ? data.shape[0] : 1;
    if (series > 24) {
        throw usage_error(
            fmt::format("{} would be {} lines; use --kind heatmap, or --index on a "
                        "3-D dataset",
                        d.dataset, series));
    }
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = x_axis.values ? (*x_axis.values)[i] : static_cast<double>(i);
    std::vector<std::string> row_names =
        data.rank() == 2 ? tick_labels(d.axes[0]) : std::vector<std::string>{};
    for (std::size_t s = 0; s < series; ++s) {
        Series line;
        if (data.rank() == 2) {
            line.name =
                d.axes[0].name + " = " + (row_names.empty() ? std::to_string(s) : row_names[s]);
        }
        line.x = x;
        line.y.assign(data.data.begin() + static_cast<std::ptrdiff_t>(s * n),
                      data.data.begin() + static_cast<std::ptrdiff_t>((s + 1) * n));
        p.series.push_back(std::move(line));
    }
    return p;
}

}  // namespace

PlotKind parse_plot_kind(const std::string& name) {
    if (name == "auto") return PlotKind::automatic;
    if (name == "heatmap") return PlotKind::heatmap;
    if (name == "lines") return PlotKind::lines;
    throw usage_error("--kind: expected auto, heatmap or lines, got '" + name + "'");
}

std::pair<std::string, std::string> split_file_dataset(const std::string& argument) {
    struct stat st {};
    auto colon = argument.rfind(':');
    if (colon == std::string::npos || stat(argument.c_str(), &st) == 0) return {argument, ""};
    return {argument.substr(0, colon), argument.substr(colon + 1)};
}

std::string default_plot_dataset(const H5Input& in) {
    std::vector<std::string> names = in.dataset_names();
    std::vector<std::string> coordinates, candidates;
    for (const auto& name : names) {
        auto shape = numeric_shape(in, name);
        if (!shape || shape->empty() || shape->size() > 3 || element_count(*shape) == 0) continue;
        candidates.push_back(name);
        std::vector<std::string> labels = in.axes(name);
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (auto c = coordinate_of(in, name, labels[i], (*shape)[i])) coordinates.push_back(*c);
        }
    }
    std::vector<std::string> plottable;
    for (const auto& c : candidates) {
        if (std::find(coordinates.begin(), coordinates.end(), c) == coordinates.end())
            plottable.push_back(c);
    }
    if (plottable.size() == 1) return plottable[0];
    if (plottable.empty())
        throw data_error(in.name(), "", "no 1-D, 2-D or 3-D numeric dataset to plot");
    std::string list;
    for (std::size_t i = 0; i < plottable.size() && i < 12; ++i)
        list += (i ? ", " : "") + plottable[i];
    if (plottable.size() > 12) list += ", ...";
    throw usage_error(fmt::format("{} has {} datasets to plot; name one as FILE:DATASET ({})",
                                  in.name(), plottable.size(), list));
}

std::string plot_dataset(const H5Input& in, const std::string& dataset,
                         const DatasetPlotOptions& options) {
    const PlotData d = read_plot_data(in, dataset, options);
    PlotKind kind = options.kind;
    if (kind == PlotKind::automatic)
        kind = d.data.rank() == 1 ? PlotKind::lines : PlotKind::heatmap;
    if (kind == PlotKind::heatmap) return render_heatmap(dataset_heatmap(d, options));
    return render_lines(dataset_lines(d, options));
}

}  // namespace ropekit
