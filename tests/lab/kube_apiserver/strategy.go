package main

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/storage/names"
)

// The size limit kube-apiserver puts on a Secret's and a ConfigMap's data.
const maxDataBytes = 1024 * 1024

// objectStrategy is the create/update/delete policy of one resource: kube-apiserver's object-meta
// rules plus the resource's own preparation and data checks.
type objectStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	namespaced bool
	nameRule   apivalidation.ValidateNameFunc
	prepare    func(obj runtime.Object)
	validate   func(obj runtime.Object) field.ErrorList
}

var (
	namespaceStrategy = &objectStrategy{
		ObjectTyper: scheme, NameGenerator: names.SimpleNameGenerator,
		nameRule: apivalidation.ValidateNamespaceName,
		prepare: func(obj runtime.Object) {
			namespace := obj.(*corev1.Namespace)
			if namespace.Status.Phase == "" {
				namespace.Status.Phase = corev1.NamespaceActive
			}
			// kube-apiserver labels every namespace with its name.
			if namespace.Labels == nil {
				namespace.Labels = map[string]string{}
			}
			namespace.Labels[corev1.LabelMetadataName] = namespace.Name
		},
		validate: func(runtime.Object) field.ErrorList { return nil },
	}
	secretStrategy = &objectStrategy{
		ObjectTyper: scheme, NameGenerator: names.SimpleNameGenerator, namespaced: true,
		nameRule: apivalidation.NameIsDNSSubdomain,
		prepare: func(obj runtime.Object) {
			secret := obj.(*corev1.Secret)
			// v1's write-only stringData lands in data (kube-apiserver's conversion does this).
			for key, value := range secret.StringData {
				if secret.Data == nil {
					secret.Data = map[string][]byte{}
				}
				secret.Data[key] = []byte(value)
			}
			secret.StringData = nil
			if secret.Type == "" {
				secret.Type = corev1.SecretTypeOpaque
			}
		},
		validate: func(obj runtime.Object) field.ErrorList {
			secret := obj.(*corev1.Secret)
			sizes := map[string]int{}
			for key, value := range secret.Data {
				sizes[key] = len(value)
			}
			return validateData(sizes)
		},
	}
	configMapStrategy = &objectStrategy{
		ObjectTyper: scheme, NameGenerator: names.SimpleNameGenerator, namespaced: true,
		nameRule: apivalidation.NameIsDNSSubdomain,
		prepare:  func(runtime.Object) {},
		validate: func(obj runtime.Object) field.ErrorList {
			configMap := obj.(*corev1.ConfigMap)
			sizes := map[string]int{}
			for key, value := range configMap.Data {
				sizes[key] = len(value)
			}
			for key, value := range configMap.BinaryData {
				sizes[key] = len(value)
			}
			return validateData(sizes)
		},
	}
)

func validateData(sizes map[string]int) field.ErrorList {
	var errs field.ErrorList
	total := 0
	for key, size := range sizes {
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(key), key, msg))
		}
		total += size
	}
	if total > maxDataBytes {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxDataBytes))
	}
	return errs
}

func (s *objectStrategy) NamespaceScoped() bool { return s.namespaced }

func (s *objectStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) { s.prepare(obj) }

func (s *objectStrategy) PrepareForUpdate(_ context.Context, obj, _ runtime.Object) { s.prepare(obj) }

func (s *objectStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(objectMeta(obj), s.namespaced, s.nameRule, field.NewPath("metadata"))
	return append(errs, s.validate(obj)...)
}

func (s *objectStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(objectMeta(obj), objectMeta(old), field.NewPath("metadata"))
	return append(errs, s.validate(obj)...)
}

func (s *objectStrategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

func (s *objectStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

func (s *objectStrategy) Canonicalize(runtime.Object) {}

func (s *objectStrategy) AllowCreateOnUpdate() bool { return false }

func (s *objectStrategy) AllowUnconditionalUpdate() bool { return true }

func objectMeta(obj runtime.Object) metav1.Object {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		panic(err) // every served type has ObjectMeta
	}
	return accessor
}
