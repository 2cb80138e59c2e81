#include "ropekit/plot/svg_plot.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

constexpr double kFont = 11;        // tick labels, legend
constexpr double kTitleFont = 15;   // figure title
constexpr double kAxisFont = 13;    // axis titles
constexpr double kCharWidth = 0.6;  // average glyph width / font size, DejaVu Sans-like

double text_width(const std::string& s, double font) {
    return static_cast<double>(s.size()) * font * kCharWidth;
}

// Coordinates with two decimals: exact enough for screens, identical on every run.
std::string num(double v) {
    std::string s = fmt::format("{:.2f}", v);
    if (s == "-0.00") s = "0.00";
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
}

class Svg {
  public:
    Svg(double width, double height) {
        out_ = fmt::format(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
            "viewBox=\"0 0 {0} {1}\">\n"
            "<rect width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n"
            "<g font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"{2}\" "
            "fill=\"#222222\">\n",
            num(width), num(height), num(kFont));
    }
    void raw(const std::string& s) { out_ += s; }
    void line(double x1, double y1, double x2, double y2, const std::string& stroke = "#444444",
              double stroke_width = 1) {
        out_ += fmt::format(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
            num(x1), num(y1), num(x2), num(y2), stroke, num(stroke_width));
    }
    // anchor: start | middle | end; rotate: degrees about (x, y).
    void text(double x, double y, const std::string& s, const std::string& anchor = "middle",
              double font = kFont, double rotate = 0, const std::string& extra = "") {
        std::string transform = rotate != 0 ? fmt::format(" transform=\"rotate({} {} {})\"",
                                                          num(rotate), num(x), num(y))
                                            : "";
        std::string size = font != kFont ? fmt::format(" font-size=\"{}\"", num(font)) : "";
        out_ += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"{}\"{}{}{}>{}</text>\n", num(x),
                            num(y), anchor, size, transform, extra, xml_escape(s));
    }
    std::string finish() { return out_ + "</g>\n</svg>\n"; }

  private:
    std::string out_;
};

bool finite(double v) {
    return std::isfinite(v);
}

// A 1-2-5 step as multiple * 10^exponent, so tick values can be formed without drift
// (6 / 10 is exactly the double nearest 0.6; 3 * 0.2 is not).
struct Step {
    double multiple;
    int exponent;
    double value() const { return scaled(1); }
    double scaled(double k) const {
        double power = std::pow(10.0, std::abs(exponent));
        return exponent >= 0 ? k * multiple * power : k * multiple / power;
    }
};

Step nice_step(double range, std::size_t target) {
    double raw = range / static_cast<double>(std::max<std::size_t>(target, 1));
    int exponent = static_cast<int>(std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0}) {
        Step s{m, exponent};
        if (s.value() >= raw * (1 - 1e-9)) return s;
    }
    return {1.0, exponent + 1};
}

std::string with_units(const std::string& label, const std::string& units) {
    if (units.empty()) return label;
    return label.empty() ? "[" + units + "]" : label + " [" + units + "]";
}

}  // namespace

std::string hex(Rgb c) {
    return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b);
}

Rgb viridis(double t) {
    static constexpr std::array<Rgb, 9> kAnchors{{{68, 1, 84},
                                                  {72, 40, 120},
                                                  {62, 73, 137},
                                                  {49, 104, 142},
                                                  {38, 130, 142},
                                                  {31, 158, 137},
                                                  {53, 183, 121},
                                                  {110, 206, 88},
                                                  {253, 231, 37}}};
    if (!(t > 0)) return kAnchors.front();  // also NaN
    if (t >= 1) return kAnchors.back();
    double x = t * static_cast<double>(kAnchors.size() - 1);
    auto i = static_cast<std::size_t>(x);
    double f = x - static_cast<double>(i);
    auto mix = [f](std::uint8_t a, std::uint8_t b) {
        return static_cast<std::uint8_t>(std::lround(a + f * (b - a)));
    };
    const Rgb& a = kAnchors[i];
    const Rgb& b = kAnchors[i + 1];
    return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

double ColorScale::position(double value) const {
    if (std::isnan(value)) return value;
    double t;
    if (log) {
        if (value <= 0) return 0;
        t = (std::log(value) - std::log(min)) / (std::log(max) - std::log(min));
    } else {
        t = (value - min) / (max - min);
    }
    if (!(max > min)) t = 0.5;  // a constant image: one mid colour
    return std::clamp(t, 0.0, 1.0);
}

std::vector<double> nice_ticks(double lo, double hi, std::size_t target) {
    if (!finite(lo) || !finite(hi)) return {};
    if (hi < lo) std::swap(lo, hi);
    if (hi == lo) return {lo};
    Step step = nice_step(hi - lo, target);
    std::vector<double> ticks;
    double eps = step.value() * 1e-9;
    for (double k = std::ceil((lo - eps) / step.value()); step.scaled(k) <= hi + eps; k += 1) {
        double v = step.scaled(k);
        ticks.push_back(std::abs(v) < eps ? 0.0 : v);
    }
    return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
    if (!(lo > 0) || !finite(hi) || hi < lo) return {};
    int first = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
    int last = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
    bool sparse = last - first < 3;
    std::vector<double> ticks;
    for (int e = first; e <= last; ++e) {
        for (double m : {1.0, 2.0, 5.0}) {
            if (m != 1.0 && !sparse) continue;
            double v = m * std::pow(10.0, e);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
        }
    }
    return ticks;
}

std::string tick_label(double value, double step) {
    if (value == 0) return "0";
    double a = std::abs(value);
    if (a >= 1e5 || a < 1e-4) {
        std::string s = fmt::format("{:.3g}", value);
        return s;
    }
    int decimals =
        step > 0 ? std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))) : 3;
    return fmt::format("{:.{}f}", value, std::min(decimals, 6));
}

std::vector<std::size_t> thinned_label_indices(std::size_t count, double spacing_px,
                                               double widest_px) {
    constexpr double kGap = 4;
    std::size_t every = 1;
    auto fits = [&](std::size_t k) {
        return static_cast<double>(k) * spacing_px >= widest_px + kGap;
    };
    for (std::size_t magnitude = 1; !fits(every) && every < count; magnitude *= 10) {
        for (std::size_t m : {1, 2, 5}) {
            every = m * magnitude;
            if (fits(every) || every >= count) break;
        }
    }
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < count; i += every) kept.push_back(i);
    return kept;
}

std::string xml_escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

ColorScale heatmap_color_scale(const Heatmap& h) {
    ColorScale scale;
    scale.log = h.log_color;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double v : h.values) {
        if (!finite(v) || (h.log_color && v <= 0)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    scale.min = finite(h.color_min) ? h.color_min : lo;
    scale.max = finite(h.color_max) ? h.color_max : hi;
    if (!finite(scale.min) || !finite(scale.max)) {
        throw usage_error(h.log_color ? "heatmap: no positive finite value to draw on a log scale"
                                      : "heatmap: no finite value to draw");
    }
    if (h.log_color && !(scale.min > 0))
        throw usage_error("heatmap: log colour scale needs min > 0");
    return scale;
}

std::string render_heatmap(const Heatmap& h) {
    if (h.rows == 0 || h.cols == 0 || h.values.size() != h.rows * h.cols) {
        throw usage_error(fmt::format("heatmap: {} values do not fill {} x {} cells",
                                      h.values.size(), h.rows, h.cols));
    }
    auto label = [](const std::vector<std::string>& given, std::size_t i) {
        return given.empty() ? std::to_string(i) : given[i];
    };
    double widest_x = 0, widest_y = 0;
    for (std::size_t c = 0; c < h.cols; ++c)
        widest_x = std::max(widest_x, text_width(label(h.x_tick_labels, c), kFont));
    for (std::size_t r = 0; r < h.rows; ++r)
        widest_y = std::max(widest_y, text_width(label(h.y_tick_labels, r), kFont));

    const ColorScale scale = heatmap_color_scale(h);
    std::vector<double> bar_ticks =
        scale.log ? log_ticks(scale.min, scale.max) : nice_ticks(scale.min, scale.max, 5);
    double bar_step = bar_ticks.size() > 1 ? bar_ticks[1] - bar_ticks[0] : 0;
    double widest_bar = 0;
    for (double v : bar_ticks) {
        std::string text = scale.log ? fmt::format("{:g}", v) : tick_label(v, bar_step);
        widest_bar = std::max(widest_bar, text_width(text, kFont));
    }

    const double top = h.title.empty() ? 16 : 40;
    const double left = 12 + kAxisFont + 10 + widest_y + 8;
    const double bottom = 8 + kFont + 10 + kAxisFont + 12;
    const double right = 18 + 16 + 6 + widest_bar + 10 + kAxisFont + 12;
    const double pw = h.width - left - right, ph = h.height - top - bottom;
    if (pw < 40 || ph < 40) throw usage_error("heatmap: figure too small for its labels");
    const double cw = pw / static_cast<double>(h.cols), ch = ph / static_cast<double>(h.rows);
    auto row_y = [&](std::size_t r) {
        std::size_t slot = h.row0_top ? r : h.rows - 1 - r;
        return top + static_cast<double>(slot) * ch;
    };

    Svg svg(h.width, h.height);
    if (!h.title.empty())
        svg.text(h.width / 2, 24, h.title, "middle", kTitleFont, 0, " font-weight=\"bold\"");

    // Cells; widths overlap by a hair so no background seams show between them.
    svg.raw("<g class=\"cells\" shape-rendering=\"crispEdges\">\n");
    for (std::size_t r = 0; r < h.rows; ++r) {
        for (std::size_t c = 0; c < h.cols; ++c) {
            double v = h.values[r * h.cols + c];
            std::string fill = finite(v) ? hex(viridis(scale.position(v))) : "#c8c8c8";
            svg.raw(fmt::format(
                "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                num(left + static_cast<double>(c) * cw), num(row_y(r)), num(cw + 0.3),
                num(ch + 0.3), fill));
        }
    }
    svg.raw("</g>\n");
    svg.raw(
        fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                    "stroke=\"#444444\"/>\n",
                    num(left), num(top), num(pw), num(ph)));

    // Tick labels at cell centres, thinned so none overlap.
    svg.raw("<g class=\"x-ticks\">\n");
    for (std::size_t c : thinned_label_indices(h.cols, cw, widest_x)) {
        double x = left + (static_cast<double>(c) + 0.5) * cw;
        svg.line(x, top + ph, x, top + ph + 4);
        svg.text(x, top + ph + 6 + kFont, label(h.x_tick_labels, c));
    }
    svg.raw("</g>\n<g class=\"y-ticks\">\n");
    for (std::size_t r : thinned_label_indices(h.rows, ch, kFont * 1.1)) {
        double y = row_y(r) + ch / 2;
        svg.line(left - 4, y, left, y);
        svg.text(left - 6, y + kFont * 0.35, label(h.y_tick_labels, r), "end");
    }
    svg.raw("</g>\n");
    svg.text(left + pw / 2, h.height - 12, h.x_label, "middle", kAxisFont);
    svg.text(14 + kAxisFont * 0.5, top + ph / 2, h.y_label, "middle", kAxisFont, -90);

    // Colour bar: a vertical gradient with the same 9 anchors, maximum at the top.
    const double bx = left + pw + 18, bw = 16;
    svg.raw("<defs><linearGradient id=\"colorbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n");
    for (int i = 0; i <= 8; ++i) {
        svg.raw(fmt::format("<stop offset=\"{}\" stop-color=\"{}\"/>\n", num(i / 8.0),
                            hex(viridis(i / 8.0))));
    }
    svg.raw("</linearGradient></defs>\n");
    svg.raw(
        fmt::format("<rect class=\"colorbar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                    "fill=\"url(#colorbar)\" stroke=\"#444444\"/>\n",
                    num(bx), num(top), num(bw), num(ph)));
    svg.raw("<g class=\"colorbar-ticks\">\n");
    for (double v : bar_ticks) {
        double y = top + ph * (1 - scale.position(v));
        svg.line(bx + bw, y, bx + bw + 4, y);
        svg.text(bx + bw + 6, y + kFont * 0.35,
                 scale.log ? fmt::format("{:g}", v) : tick_label(v, bar_step), "start");
    }
    svg.raw("</g>\n");
    std::string bar_title = with_units(h.color_label, h.color_units);
    if (scale.log) bar_title += " (log scale)";
    svg.text(h.width - 12 - kAxisFont * 0.3, top + ph / 2, bar_title, "middle", kAxisFont, -90);
    return svg.finish();
}

std::string render_lines(const LinePlot& p) {
    static const std::array<const char*, 8> kPalette{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    auto usable = [&](double x, double y) { return finite(x) && finite(y) && (!p.log_x || x > 0); };
    double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
    for (const auto& s : p.series) {
        if (s.x.size() != s.y.size() || (!s.band.empty() && s.band.size() != s.y.size())) {
            throw usage_error("line plot: series '" + s.name +
                              "' has x, y and band of different lengths");
        }
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!usable(s.x[i], s.y[i])) continue;
            double b = s.band.empty() || !finite(s.band[i]) ? 0 : std::abs(s.band[i]);
            xlo = std::min(xlo, s.x[i]);
            xhi = std::max(xhi, s.x[i]);
            ylo = std::min(ylo, s.y[i] - b);
            yhi = std::max(yhi, s.y[i] + b);
        }
    }
    if (!finite(xlo)) throw usage_error("line plot: no finite point to draw");
    if (ylo == yhi) {
        double pad = ylo == 0 ? 1 : std::abs(ylo) * 0.1;
        ylo -= pad;
        yhi += pad;
    }
    if (xlo == xhi) {
        if (p.log_x) {
            xlo /= 2;
            xhi *= 2;
        } else {
            xlo -= 1;
            xhi += 1;
        }
    }
    // The y axis spans whole tick steps around the data.
    std::vector<double> yt = nice_ticks(ylo, yhi, 6);
    double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
    ylo = std::floor(ylo / ystep + 1e-9) * ystep;
    yhi = std::ceil(yhi / ystep - 1e-9) * ystep;
    yt = nice_ticks(ylo, yhi, 6);
    std::vector<double> xt = p.log_x ? log_ticks(xlo, xhi) : nice_ticks(xlo, xhi, 7);
    double xstep = !p.log_x && xt.size() > 1 ? xt[1] - xt[0] : 0;

    double widest_y = 0;
    for (double v : yt) widest_y = std::max(widest_y, text_width(tick_label(v, ystep), kFont));
    const double top = p.title.empty() ? 16 : 40;
    const double left = 12 + kAxisFont + 10 + widest_y + 8;
    const double bottom = 8 + kFont + 10 + kAxisFont + 12;
    const double right = 20;
    const double pw = p.width - left - right, ph = p.height - top - bottom;
    if (pw < 40 || ph < 40) throw usage_error("line plot: figure too small for its labels");
    auto fx = [&](double x) {
        double t = p.log_x ? (std::log(x) - std::log(xlo)) / (std::log(xhi) - std::log(xlo))
                           : (x - xlo) / (xhi - xlo);
        return left + t * pw;
    };
    auto fy = [&](double y) { return top + (1 - (y - ylo) / (yhi - ylo)) * ph; };

    Svg svg(p.width, p.height);
    if (!p.title.empty())
        svg.text(p.width / 2, 24, p.title, "middle", kTitleFont, 0, " font-weight=\"bold\"");
    svg.raw("<g class=\"grid\">\n");
    for (double v : yt) svg.line(left, fy(v), left + pw, fy(v), "#e6e6e6");
    for (double v : xt) svg.line(fx(v), top, fx(v), top + ph, "#e6e6e6");
    svg.raw("</g>\n<g class=\"x-ticks\">\n");
    for (double v : xt) {
        svg.line(fx(v), top + ph, fx(v), top + ph + 4);
        svg.text(fx(v), top + ph + 6 + kFont,
                 p.log_x ? fmt::format("{:g}", v) : tick_label(v, xstep));
    }
    svg.raw("</g>\n<g class=\"y-ticks\">\n");
    for (double v : yt) {
        svg.line(left - 4, fy(v), left, fy(v));
        svg.text(left - 6, fy(v) + kFont * 0.35, tick_label(v, ystep), "end");
    }
    svg.raw("</g>\n");

    svg.raw(
        fmt::format("<clipPath id=\"plot-area\"><rect x=\"{}\" y=\"{}\" width=\"{}\" "
                    "height=\"{}\"/></clipPath>\n<g clip-path=\"url(#plot-area)\">\n",
                    num(left), num(top), num(pw), num(ph)));
    for (std::size_t si = 0; si < p.series.size(); ++si) {
        const Series& s = p.series[si];
        const char* colour = kPalette[si % kPalette.size()];
        // Runs of consecutive usable points: a skipped point breaks the line and the band.
        std::vector<std::vector<std::size_t>> runs(1);
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (usable(s.x[i], s.y[i])) {
                runs.back().push_back(i);
            } else if (!runs.back().empty()) {
                runs.emplace_back();
            }
        }
        for (const auto& run : runs) {
            if (!s.band.empty() && run.size() > 1) {
                std::string points;
                for (std::size_t i : run)
                    points += num(fx(s.x[i])) + "," + num(fy(s.y[i] + std::abs(s.band[i]))) + " ";
                for (auto it = run.rbegin(); it != run.rend(); ++it)
                    points +=
                        num(fx(s.x[*it])) + "," + num(fy(s.y[*it] - std::abs(s.band[*it]))) + " ";
                points.pop_back();
                svg.raw(
                    fmt::format("<polygon class=\"band\" points=\"{}\" fill=\"{}\" "
                                "fill-opacity=\"0.22\" stroke=\"none\"/>\n",
                                points, colour));
            }
            if (run.size() == 1) {
                svg.raw(fmt::format(
                    "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{}\"/>\n",
                    num(fx(s.x[run[0]])), num(fy(s.y[run[0]])), colour));
            } else if (run.size() > 1) {
                std::string points;
                for (std::size_t i : run) points += num(fx(s.x[i])) + "," + num(fy(s.y[i])) + " ";
                points.pop_back();
                svg.raw(
                    fmt::format("<polyline class=\"line\" points=\"{}\" fill=\"none\" "
                                "stroke=\"{}\" stroke-width=\"1.6\" stroke-linejoin=\"round\"/>\n",
                                points, colour));
            }
        }
    }
    svg.raw("</g>\n");
    svg.raw(
        fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                    "stroke=\"#444444\"/>\n",
                    num(left), num(top), num(pw), num(ph)));
    svg.text(left + pw / 2, p.height - 12,
             with_units(p.x_label, p.x_units) + (p.log_x ? " (log scale)" : ""), "middle",
             kAxisFont);
    svg.text(14 + kAxisFont * 0.5, top + ph / 2, with_units(p.y_label, p.y_units), "middle",
             kAxisFont, -90);

    // Legend in the top-right corner of the plot area, on a white box.
    std::vector<const Series*> named;
    for (const auto& s : p.series)
        if (!s.name.empty()) named.push_back(&s);
    if (!named.empty()) {
        double widest = 0;
        for (const Series* s : named) widest = std::max(widest, text_width(s->name, kFont));
        double lw = widest + 40, lh = 8 + 16 * static_cast<double>(named.size());
        double lx = left + pw - lw - 8, ly = top + 8;
        svg.raw(
            fmt::format("<g class=\"legend\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                        "fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n",
                        num(lx), num(ly), num(lw), num(lh)));
        for (std::size_t i = 0; i < p.series.size(); ++i) {
            if (p.series[i].name.empty()) continue;
            std::size_t slot = static_cast<std::size_t>(
                std::find(named.begin(), named.end(), &p.series[i]) - named.begin());
            double y = ly + 12 + 16 * static_cast<double>(slot);
            svg.line(lx + 8, y, lx + 28, y, kPalette[i % kPalette.size()], 2);
            svg.text(lx + 34, y + kFont * 0.35, p.series[i].name, "start");
        }
        svg.raw("</g>\n");
    }
    return svg.finish();
}

}  // namespace ropekit
