#include "ropekit/cli/text_options.hpp"

namespace ropekit {

CLI::Option* add_text_options(CLI::App& app, TextSource& source) {
    CLI::Option* text = app.add_option(
        "--text", source.path,
        "Text to run ('-' = stdin): tokenized with the model directory's own tokenizer, one "
        "document per line joined with the model's separator, cut into --length windows");
    app.add_option("--stride", source.stride,
                   "With --text: a window every S tokens, each scoring only the S tokens the "
                   "previous one did not hold (sliding-window perplexity; default --length)")
        ->needs(text);
    app.add_flag("--whole", source.whole, "With --text: the whole file is one document")
        ->needs(text);
    for (const char* other : {"--tokens", "--ids", "--sample"}) {
        if (CLI::Option* o = app.get_option_no_throw(other)) text->excludes(o);
    }
    return text;
}

}  // namespace ropekit
