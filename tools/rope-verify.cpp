// rope-verify: checks the paper's results numerically and exits 3 if any check fails.
#include "ropekit/cli/cli.hpp"
#include "ropekit/verify/verify_run.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-verify",
              "Check the RoPE paper's propositions and theorems numerically over a grid of head "
              "dimensions and bases: rope-relative, layout-equivalence, prope-endpoints, "
              "prop-3.1, prop-3.2, fig-2a, prop-5.2, thm-5.3-diagonal, thm-5.3-previous, "
              "thm-6.1, lemma-a.1 (docs/tools/rope-verify.md says what each measures). Prints one "
              "line per check and grid point (verdict, name, d, theta, the quantity measured, "
              "its value against the tolerance, the paper's result) and a final line 'N of M "
              "checks hold'; exits 3 if any check fails (1 is a runtime error, 2 a bad command "
              "line).");
    VerifyCommand command;
    auto& app = tool.app();
    app.add_option("--head-dim", command.head_dims,
                   "Head dimensions to check (even), one per grid point")
        ->capture_default_str();
    app.add_option("--theta", command.thetas, "RoPE bases, paired with --head-dim by position")
        ->capture_default_str();
    app.add_option("--check", command.only, "Run only these checks (by name; repeatable)");
    app.add_flag("--json", command.json, "Print the results as a JSON array instead of a table");
    app.add_flag("-v,--verbose", command.verbose,
                 "Below each line, what the check did and the details of its result");
    tool.examples(
        "  rope-verify                                 # default grid: (256, 1e4) and (128, 5e5)\n"
        "  rope-verify --head-dim 64 --theta 10000 --check rope-relative --check lemma-a.1\n"
        "  rope-verify --json | python3 -m json.tool   # machine-readable results\n"
        "  rope-verify | grep FAIL                     # only what failed\n"
        "  rope-verify --check prop-3.1 --verbose      # what one check did, in detail\n");
    return tool.run(argc, argv, [&] { run_verify(command, tool.context()); });
}
