export { NativeSession, nativeOrtVersion, type NativeSessionOptions, type IOMetadata, type RawTensor, type ExecutionProvider } from './session';
export { opsLibraryPath, ortLibraryPath, addonPath, packageRoot, hasOpsLibrary } from './paths';
export { nativeMpi, mpiLibraryPath, hasMpiLibrary, type NativeMpi, type MpiArray } from './mpi';
