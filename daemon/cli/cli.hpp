#pragma once

// The gio-exporter command line: parses arguments and runs one subcommand.

namespace gio::cli {

// Returns the process exit status (interface.md, "Commands").
int main(int argc, char** argv);

}  // namespace gio::cli
