// Where kernel code and kernel variables are, for the race reports (execution.cpp): the code
// offset that addr2line takes, and the names of __shared__ variables from the library's own ELF
// symbol table (they are local symbols, which dladdr does not see).
#include "emulator.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

namespace fo_emu {
namespace {

struct StaticVariable {
  uintptr_t offset;  // from the library's load address
  size_t size;
  std::string name;
};

std::string demangle(const char* name) {
  int status = 0;
  char* plain = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = status == 0 && plain ? plain : name;
  free(plain);
  return result;
}

// The data objects in the .symtab of the ELF file at path (none when it has none).
std::vector<StaticVariable> read_variables(const char* path) {
  std::vector<StaticVariable> variables;
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < sizeof(Elf64_Ehdr)) return variables;
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(file.data());
  if (memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 || header->e_ident[EI_CLASS] != ELFCLASS64 ||
      header->e_shoff + (uint64_t)header->e_shnum * sizeof(Elf64_Shdr) > file.size()) {
    return variables;
  }
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(file.data() + header->e_shoff);
  for (unsigned i = 0; i < header->e_shnum; i++) {
    const Elf64_Shdr& table = sections[i];
    if (table.sh_type != SHT_SYMTAB || table.sh_link >= header->e_shnum) continue;
    const Elf64_Shdr& strings = sections[table.sh_link];
    if (table.sh_offset + table.sh_size > file.size() || strings.sh_offset + strings.sh_size > file.size()) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(file.data() + table.sh_offset);
    for (size_t s = 0; s < table.sh_size / sizeof(Elf64_Sym); s++) {
      if (ELF64_ST_TYPE(symbols[s].st_info) != STT_OBJECT || symbols[s].st_name >= strings.sh_size) continue;
      variables.push_back({symbols[s].st_value, symbols[s].st_size, demangle(file.data() + strings.sh_offset + symbols[s].st_name)});
    }
  }
  return variables;
}

}  // namespace

std::string describe_code(const void* pc) {
  Dl_info info;
  if (!pc || !dladdr(pc, &info) || !info.dli_fname) return "code address unknown";
  char text[640];
  // pc is where the call returns to; one byte back is inside the call instruction, whose line addr2line gives.
  snprintf(text, sizeof text, "code at %s+0x%" PRIxPTR " (addr2line -f -i -e %s 0x%" PRIxPTR ")", basename(info.dli_fname),
           (uintptr_t)pc - (uintptr_t)info.dli_fbase - 1, info.dli_fname, (uintptr_t)pc - (uintptr_t)info.dli_fbase - 1);
  return text;
}

std::string describe_static(uintptr_t address) {
  static std::mutex lock;
  static std::vector<StaticVariable>* variables = nullptr;  // of this library, read at the first report
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(address), &info) || !info.dli_fname) return "";
  std::lock_guard<std::mutex> guard(lock);
  if (!variables) variables = new std::vector<StaticVariable>(read_variables(info.dli_fname));
  const uintptr_t offset = address - (uintptr_t)info.dli_fbase;
  for (const StaticVariable& v : *variables) {
    if (offset >= v.offset && offset < v.offset + v.size) {
      char text[512];
      snprintf(text, sizeof text, "%s, byte %zu", v.name.c_str(), (size_t)(offset - v.offset));
      return text;
    }
  }
  return "";
}

}  // namespace fo_emu
