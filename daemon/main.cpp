#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return gio::cli::main(argc, argv);
}
