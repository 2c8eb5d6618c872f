export { NativeSession, nativeOrtVersion, type NativeSessionOptions, type IOMetadata } from './session';
export { opsLibraryPath, ortLibraryPath, addonPath, packageRoot, hasOpsLibrary } from './paths';
