//! The embedded eBPF object, and the two lookups every part makes in it once
//! aya has loaded it: a program, as the kind aya drives it as, and a map,
//! taken out of the object. A leaf: it names nothing of probes/ but the
//! program names and the error type.

use aya::maps::{Map, MapError};
use aya::Ebpf;

use super::programs::Program;
use crate::probes::errors::ProbeError;

/// The object the build script compiled (empty in a LEAKTRACE_EBPF_STUB build).
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("LEAKTRACE_BPF_OBJECT"));

/// A program of the loaded object, as the kind aya drives it as.
pub(crate) fn program<'a, T>(ebpf: &'a mut Ebpf, prog: Program) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(prog.name()).ok_or(ProbeError::MissingProgram(prog.name()))?;
    p.try_into().map_err(|source| ProbeError::ProgramKind { program: prog.name(), source })
}

/// Takes map `name` out of the loaded object.
pub(crate) fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
}

/// Takes map `name` out of the loaded object, as the kind aya drives it as.
pub(crate) fn map<T: TryFrom<Map, Error = MapError>>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError> {
    T::try_from(take_map(ebpf, name)?).map_err(|e| ProbeError::MapKind { name, source: Some(e) })
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests {
    use object::{Object, ObjectSymbol};

    use super::*;

    #[test]
    fn every_program_is_in_the_embedded_object() {
        let file = object::File::parse(OBJECT).expect("the embedded eBPF object parses");
        for p in Program::all() {
            assert!(file.symbols().any(|s| s.name() == Ok(p.name())), "program {p} is missing from the object");
        }
    }
}
